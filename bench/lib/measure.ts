/**
 * Run one autocannon case programmatically: a warm-up (results discarded, except its non-2xx and
 * errors, which still count against the case) then the measured run, both at `connections` (50),
 * both bounded in time by a watchdog. While the measured run goes, the RSS of one process (the server
 * under test) is sampled from /proc/<pid>/status.
 */
import { readdirSync, readFileSync } from 'node:fs';
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
  /**
   * CPU time the server process (`rssPid`) spent per 2xx answer during the measured run, µs, per
   * thread name (`total` = the whole process); null when not sampled. Shows where the work is when
   * the request rate alone cannot (a thread that waits looks the same as one that computes).
   */
  cpuUsPerRequest: Record<string, number> | null;
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
  const cpuBefore = spec.rssPid ? readThreadCpuMs(spec.rssPid) : null;
  let measured: RunStats;
  try {
    measured = await runOnce(spec, opts.durationSec, opts);
  } finally {
    sampler?.stop();
  }
  const cpuAfter = spec.rssPid ? readThreadCpuMs(spec.rssPid) : null;
  return {
    warmup,
    measured,
    rssPeakMb: sampler?.peakMb() ?? null,
    rssBeforeMb,
    cpuUsPerRequest: cpuBefore && cpuAfter ? cpuPerRequest(cpuBefore, cpuAfter, measured.ok2xx) : null,
  };
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

/**
 * CPU time (user + system, ms) of each thread of `pid`, keyed by thread id, with its name (`main`
 * for the event-loop thread)
 * (/proc/<pid>/task/<tid>/stat fields 14–15, in clock ticks of 10 ms); null without /proc.
 */
function readThreadCpuMs(pid: number): Map<string, { name: string; ms: number }> | null {
  try {
    const threads = new Map<string, { name: string; ms: number }>();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // The name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // Node names every thread "node"; the main (event-loop) thread is the one whose id is the pid.
      threads.set(tid, {
        name: tid === String(pid) ? 'main' : name,
        ms: (Number(fields[11]) + Number(fields[12])) * 10,
      });
    }
    return threads;
  } catch {
    return null;
  }
}

/** Per thread name (threads of one name summed) and `total`: CPU µs per answered request. */
function cpuPerRequest(
  before: Map<string, { name: string; ms: number }>,
  after: Map<string, { name: string; ms: number }>,
  requests: number,
): Record<string, number> | null {
  if (requests <= 0) return null;
  const byName: Record<string, number> = { total: 0 };
  for (const [tid, { name, ms }] of after) {
    const spent = ms - (before.get(tid)?.ms ?? 0);
    if (spent <= 0) continue;
    byName[name] = (byName[name] ?? 0) + spent;
    // BENCH_THREADS=1: every thread on its own (Node names them all "node": the database thread,
    // the four thread-pool threads that sign, V8's GC helpers), to tell them apart by their share.
    if (process.env.BENCH_THREADS) {
      process.stderr.write(`    thread ${tid} ${name}: ${Math.round((spent * 1000) / requests)} µs/req\n`);
    }
    byName.total = (byName.total ?? 0) + spent;
  }
  for (const name of Object.keys(byName)) byName[name] = Math.round(((byName[name] ?? 0) * 1000) / requests);
  return byName;
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
