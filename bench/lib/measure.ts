/**
 * Run one autocannon case programmatically: a warm-up (results discarded, except its non-2xx and
 * errors, which still count against the case) then the measured run, both at `connections` (50),
 * both bounded in time by a watchdog. While the measured run goes, the RSS of one process (the server
 * under test) is sampled from /proc/<pid>/status.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

/** Per-request overrides returned by a request generator. Headers are merged over the defaults. */
export interface RequestOverride {
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** What to fire at. Built by a case's `setup()`. */
export interface LoadSpec {
  /** Origin of the server, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * Request generator: called once for every request (in this process, the load generator, so keep it
   * cheap — pre-compute anything expensive in `setup()`). Its result overrides path/headers/body.
   */
  next?: () => RequestOverride;
  /** PID whose RSS is sampled during the measured run (the server under test). */
  rssPid?: number;
  /** Extra raw autocannon options (rarely needed). */
  autocannon?: Partial<autocannon.Options>;
}

export interface RunStats {
  /** Mean of autocannon's per-second samples. */
  rps: number;
  p50: number;
  p99: number;
  /** Responses with a status outside 2xx. */
  non2xx: number;
  /** Connection errors and timeouts (autocannon `errors` includes `timeouts`). */
  errors: number;
  timeouts: number;
  ok2xx: number;
  durationSec: number;
  statusCodes: Record<string, number>;
}

export interface Measurement {
  warmup: RunStats;
  measured: RunStats;
  /** Peak VmRSS during the measured run, MB (MiB); null when not sampled. */
  rssPeakMb: number | null;
  /** VmRSS just before the warm-up, MB; null when not sampled. */
  rssBeforeMb: number | null;
}

export interface MeasureOptions {
  warmupSec: number;
  durationSec: number;
  connections: number;
  /** Called with the running autocannon instance, so Ctrl-C can stop it. */
  onInstance?: (instance: autocannon.Instance | undefined) => void;
}

export async function measure(spec: LoadSpec, opts: MeasureOptions): Promise<Measurement> {
  const rssBeforeMb = spec.rssPid ? readRssMb(spec.rssPid) : null;
  const warmup = await runOnce(spec, opts.warmupSec, opts);
  const sampler = spec.rssPid ? startRssSampler(spec.rssPid) : undefined;
  let measured: RunStats;
  try {
    measured = await runOnce(spec, opts.durationSec, opts);
  } finally {
    sampler?.stop();
  }
  return { warmup, measured, rssPeakMb: sampler?.peakMb() ?? null, rssBeforeMb };
}

function buildOptions(spec: LoadSpec, durationSec: number, connections: number): autocannon.Options {
  const next = spec.next;
  const request: autocannon.Request = {
    method: spec.method ?? 'GET',
    path: spec.path,
    ...(spec.headers ? { headers: spec.headers } : {}),
    ...(spec.body !== undefined ? { body: spec.body } : {}),
  };
  if (next) {
    request.setupRequest = (req) => {
      const o = next();
      return {
        ...req,
        ...(o.path !== undefined ? { path: o.path } : {}),
        ...(o.body !== undefined ? { body: o.body } : {}),
        ...(o.headers ? { headers: { ...req.headers, ...o.headers } } : {}),
      };
    };
  }
  return {
    url: spec.origin,
    connections,
    duration: durationSec,
    timeout: 10,
    requests: [request],
    ...spec.autocannon,
  };
}

/** One autocannon run, bounded: stopped at duration + 20 s, abandoned (rejected) 5 s after that. */
function runOnce(spec: LoadSpec, durationSec: number, opts: MeasureOptions): Promise<RunStats> {
  return new Promise<RunStats>((resolve, reject) => {
    let settled = false;
    let instance: autocannon.Instance | undefined;
    const hardStop = setTimeout(
      () => {
        instance?.stop();
        setTimeout(() => {
          if (!settled) {
            settled = true;
            reject(new Error(`autocannon did not finish within ${durationSec + 25} s`));
          }
        }, 5000).unref();
      },
      (durationSec + 20) * 1000,
    );
    hardStop.unref();
    instance = autocannon(buildOptions(spec, durationSec, opts.connections), (err, result) => {
      clearTimeout(hardStop);
      opts.onInstance?.(undefined);
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(toStats(result));
    });
    opts.onInstance?.(instance);
  });
}

function toStats(r: autocannon.Result): RunStats {
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = Number(v.count);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    ok2xx: r['2xx'],
    durationSec: r.duration,
    statusCodes,
  };
}

/** VmRSS of `pid` in MB, or null when /proc is unavailable or the process is gone. */
export function readRssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function startRssSampler(pid: number, intervalMs = 250): { stop(): void; peakMb(): number | null } {
  let peak: number | null = null;
  const sample = () => {
    const mb = readRssMb(pid);
    if (mb !== null && (peak === null || mb > peak)) peak = mb;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
    },
    peakMb: () => peak,
  };
}
