/**
 * Turns the raw per-round measurements into one summary per case: medians, ratios against the
 * references (paired per round, then the median), the distance of the reference from the sign
 * ceiling, and pass/fail with reasons.
 */
import type { BenchCase } from './case.ts';
import type { Measurement } from './measure.ts';
import { median, type Spread, spread } from './rounds.ts';

export const SIGN_CEILING = 'sign ceiling';
export const DEFAULT_MAX_RSS_MB = 250;

export interface CaseRun {
  def: BenchCase;
  rounds: Measurement[];
  /** Set when setup, the probe or a round failed. */
  error?: string;
  /** From the case's `check()`. */
  checkFailures: string[];
}

export interface TargetResult {
  reference: string;
  /** Median of per-round ratios; null when the reference was not measured. */
  ratio: Spread | null;
  need: number;
  p99AtMostReference: boolean;
  referenceP99: number | null;
  pass: boolean;
}

export interface CaseSummary {
  name: string;
  reference: string | null;
  measured: boolean;
  rounds: number;
  rps: Spread;
  p50: number;
  p99: number;
  /** Non-2xx answers over all rounds, warm-ups included. */
  non2xx: number;
  /** Connection errors and timeouts over all rounds, warm-ups included. */
  errors: number;
  rssPeakMb: number | null;
  maxRssMb: number | null;
  /**
   * CPU time of the server process per answered request, µs, median over rounds: all its threads
   * (`total`) and the event-loop thread alone (`main`); null when not sampled (no /proc).
   */
  cpuUsPerRequest: { total: number; main: number } | null;
  targets: TargetResult[];
  /** Reference's median req/s ÷ sign ceiling's (for a reference case: its own ÷ sign ceiling's). */
  ceilingVsSign: number | null;
  /** 'pass' | 'FAIL' for target cases; 'ok' | 'BROKEN' for references; 'n/a' when not measured. */
  verdict: 'pass' | 'FAIL' | 'ok' | 'BROKEN' | 'n/a';
  failures: string[];
  perRound: { rps: number[]; p50: number[]; p99: number[]; rssPeakMb: (number | null)[] };
}

export function summarize(runs: readonly CaseRun[]): CaseSummary[] {
  const byName = new Map(runs.map((r) => [r.def.name, r]));
  const rpsOf = (r: CaseRun) => r.rounds.map((m) => m.measured.rps);
  const medianRps = (name: string): number | null => {
    const r = byName.get(name);
    return r && r.rounds.length > 0 ? median(rpsOf(r)) : null;
  };
  const signRps = medianRps(SIGN_CEILING);

  return runs.map((run) => {
    const { def } = run;
    const measured = run.rounds.length > 0;
    const rps = rpsOf(run);
    const p50s = run.rounds.map((m) => m.measured.p50);
    const p99s = run.rounds.map((m) => m.measured.p99);
    const rssList = run.rounds.map((m) => m.rssPeakMb);
    const rssKnown = rssList.filter((v): v is number => v !== null);
    const non2xx = run.rounds.reduce((n, m) => n + m.warmup.non2xx + m.measured.non2xx, 0);
    const errors = run.rounds.reduce((n, m) => n + m.warmup.errors + m.measured.errors, 0);
    const rssPeakMb = rssKnown.length ? Math.max(...rssKnown) : null;
    const cpuKnown = run.rounds.flatMap((m) => (m.cpuUsPerRequest ? [m.cpuUsPerRequest] : []));
    const cpuUsPerRequest = cpuKnown.length
      ? { total: median(cpuKnown.map((c) => c.total ?? 0)), main: median(cpuKnown.map((c) => c.main ?? 0)) }
      : null;
    const maxRssMb = def.maxRssMb ?? (def.reference ? DEFAULT_MAX_RSS_MB : null);
    const p99 = median(p99s);

    const failures: string[] = [];
    if (run.error) failures.push(run.error);
    failures.push(...run.checkFailures);
    if (non2xx > 0) failures.push(`${non2xx} non-2xx answers`);
    if (errors > 0) failures.push(`${errors} connection errors/timeouts`);

    const targets: TargetResult[] = [];
    const wanted = [
      ...(def.reference ? [{ reference: def.reference, ...(def.target ?? { ratio: Number.NaN }) }] : []),
      ...(def.alsoAgainst ?? []),
    ];
    for (const t of wanted) {
      const ref = byName.get(t.reference);
      const refMeasured = ref !== undefined && ref.rounds.length > 0;
      let ratio: Spread | null = null;
      let refP99: number | null = null;
      if (refMeasured && measured) {
        const refRps = rpsOf(ref);
        const n = Math.min(rps.length, refRps.length);
        ratio = spread(Array.from({ length: n }, (_, i) => rps[i]! / refRps[i]!));
        refP99 = median(ref.rounds.map((m) => m.measured.p99));
      }
      const p99Flag = t.alsoP99AtMostReference === true;
      let pass = ratio !== null && ratio.median >= t.ratio;
      if (!refMeasured) failures.push(`reference "${t.reference}" not measured`);
      else if (ratio && ratio.median < t.ratio)
        failures.push(`ratio ${ratio.median.toFixed(2)}× < ${t.ratio}× "${t.reference}"`);
      if (p99Flag && refP99 !== null && measured && p99 > refP99) {
        pass = false;
        failures.push(`p99 ${p99} ms > "${t.reference}" p99 ${refP99} ms`);
      }
      targets.push({
        reference: t.reference,
        ratio,
        need: t.ratio,
        p99AtMostReference: p99Flag,
        referenceP99: refP99,
        pass,
      });
    }
    if (maxRssMb !== null && rssPeakMb !== null && rssPeakMb > maxRssMb)
      failures.push(`RSS peak ${rssPeakMb.toFixed(0)} MB > ${maxRssMb} MB`);

    const ceilingRps = def.reference ? medianRps(def.reference) : measured ? median(rps) : null;
    const ceilingVsSign = ceilingRps !== null && signRps ? ceilingRps / signRps : null;

    let verdict: CaseSummary['verdict'];
    if (!measured) verdict = 'n/a';
    else if (def.reference) verdict = failures.length === 0 && targets.every((t) => t.pass) ? 'pass' : 'FAIL';
    else verdict = failures.length === 0 ? 'ok' : 'BROKEN';

    return {
      name: def.name,
      reference: def.reference,
      measured,
      rounds: run.rounds.length,
      rps: spread(rps),
      p50: median(p50s),
      p99,
      non2xx,
      errors,
      rssPeakMb,
      maxRssMb,
      cpuUsPerRequest,
      targets,
      ceilingVsSign,
      verdict,
      failures,
      perRound: { rps, p50: p50s, p99: p99s, rssPeakMb: rssList },
    };
  });
}
