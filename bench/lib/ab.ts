/**
 * Paired A/B comparison of fedhir variants on one case (`npm run bench -- --ab FILE --cases NAME`).
 *
 * On a shared, noisy 2-core guest the same code's req/s and CPU a request move by up to ±30 % from
 * one minute to the next (docs/performance.md, 2026-12-06 II), so two variants measured a few minutes
 * apart, or in separate full runs, cannot be told apart by a few per cent. Here every variant's
 * server is started side by side and they are measured alternately in short pairs: pair i measures
 * each variant once, the order reversed every other pair, and each variant's figures are divided by
 * the first variant's of the same pair. The medians of those per-pair ratios, with their spread, are
 * the result; a variant listed twice is an A/A control that shows how far the method itself wanders.
 *
 * A diagnostic, not a measurement against the targets: pairs are shorter than the 10–15 s the
 * performance specification asks of a case.
 */
import { readFileSync } from 'node:fs';
import type { FedhirVariant } from './case.ts';
import { type LoadSpec, type Measurement, measure } from './measure.ts';
import { type Spread, spread } from './rounds.ts';

export interface AbOptions {
  pairs: number;
  /** Measured seconds per variant and pair. */
  seconds: number;
  /** Warm-up before each measurement. */
  warmupSec: number;
  /** Before the first pair each variant in turn is loaded 1 s + this long, unmeasured (the JIT warms up). */
  firstWarmupSec: number;
  connections: number;
  shouldStop: () => boolean;
  log: (message: string) => void;
}

export interface AbVariantResult {
  name: string;
  /** Absolute figures of each pair (they drift with the machine; the ratios are what compare). */
  rps: number[];
  cpuUsPerRequest: (Record<string, number> | null)[];
  non2xx: number;
  errors: number;
  /** This variant ÷ the first variant, per pair: req/s and CPU µs a request (all threads; main). */
  ratio: { rps: Spread; cpuTotal: Spread; cpuMain: Spread } | null;
}

/**
 * Variants from `--ab`: a JSON array (inline, or the name of a file holding it) of at least two
 * `{ "name", "nodeArgs"?, "env"?, "root"? }`; the first is the baseline the others are divided by.
 */
export function parseVariants(arg: string): FedhirVariant[] {
  const text = arg.trimStart().startsWith('[') ? arg : readFileSync(arg, 'utf8');
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || parsed.length < 2)
    throw new Error('--ab needs a JSON array of 2 or more variants');
  const names = new Set<string>();
  return parsed.map((v, i) => {
    const where = `--ab variant ${i + 1}`;
    if (typeof v !== 'object' || v === null) throw new Error(`${where}: not an object`);
    const { name, nodeArgs, env, root } = v as Record<string, unknown>;
    if (typeof name !== 'string' || !/^[\w.-]{1,40}$/.test(name))
      throw new Error(`${where}: "name" (letters, digits, . _ -)`);
    if (names.has(name))
      throw new Error(`${where}: the name "${name}" is used twice (an A/A control needs two names)`);
    names.add(name);
    if (nodeArgs !== undefined && !(Array.isArray(nodeArgs) && nodeArgs.every((a) => typeof a === 'string')))
      throw new Error(`${where}: "nodeArgs" must be an array of strings`);
    if (
      env !== undefined &&
      (typeof env !== 'object' || env === null || Object.values(env).some((x) => typeof x !== 'string'))
    )
      throw new Error(`${where}: "env" must map names to strings`);
    if (root !== undefined && typeof root !== 'string') throw new Error(`${where}: "root" must be a path`);
    return { name, nodeArgs, env, root } as FedhirVariant;
  });
}

/** Measures every variant once per pair, alternating the order, and summarises the per-pair ratios. */
export async function runPairs(
  variants: readonly { name: string; load: LoadSpec }[],
  opts: AbOptions,
): Promise<AbVariantResult[]> {
  const byPair: (Measurement | undefined)[][] = variants.map(() => []);
  // A server's first seconds under load run on code V8 has not optimised yet: a cold first pair
  // would weigh on whichever variant it measured first. Its non-2xx answers still count.
  const warm = new Map<number, Measurement>();
  for (const [i, variant] of variants.entries()) {
    if (opts.shouldStop()) break;
    warm.set(
      i,
      await measure(variant.load, {
        warmupSec: 1,
        durationSec: opts.firstWarmupSec,
        connections: opts.connections,
      }),
    );
    opts.log(`  warm-up ${variant.name}: ${Math.round(warm.get(i)!.measured.rps)} req/s`);
  }
  for (let pair = 0; pair < opts.pairs && !opts.shouldStop(); pair++) {
    const order = variants.map((_, i) => i);
    if (pair % 2 === 1) order.reverse();
    for (const i of order) {
      if (opts.shouldStop()) break;
      const variant = variants[i]!;
      const m = await measure(variant.load, {
        warmupSec: opts.warmupSec,
        durationSec: opts.seconds,
        connections: opts.connections,
      });
      byPair[i]![pair] = m;
      const cpu = m.cpuUsPerRequest;
      opts.log(
        `  pair ${pair + 1}/${opts.pairs} ${variant.name}: ${Math.round(m.measured.rps)} req/s, p99 ${m.measured.p99} ms${cpu ? `, CPU µs/req ${cpu.total} (main ${cpu.main ?? '—'})` : ''}`,
      );
    }
  }
  const base = byPair[0]!;
  return variants.map((variant, i) => {
    const runs = byPair[i]!;
    const ratios = { rps: [] as number[], cpuTotal: [] as number[], cpuMain: [] as number[] };
    runs.forEach((m, pair) => {
      const b = base[pair];
      if (!m || !b) return;
      ratios.rps.push(m.measured.rps / b.measured.rps);
      const [cpu, baseCpu] = [m.cpuUsPerRequest, b.cpuUsPerRequest];
      if (cpu?.total && baseCpu?.total) ratios.cpuTotal.push(cpu.total / baseCpu.total);
      if (cpu?.main && baseCpu?.main) ratios.cpuMain.push(cpu.main / baseCpu.main);
    });
    const measured = runs.filter((m): m is Measurement => m !== undefined);
    const warmUp = warm.get(i);
    return {
      name: variant.name,
      rps: measured.map((m) => m.measured.rps),
      cpuUsPerRequest: measured.map((m) => m.cpuUsPerRequest),
      non2xx: [...measured, ...(warmUp ? [warmUp] : [])].reduce(
        (n, m) => n + m.measured.non2xx + m.warmup.non2xx,
        0,
      ),
      errors: [...measured, ...(warmUp ? [warmUp] : [])].reduce(
        (n, m) => n + m.measured.errors + m.warmup.errors,
        0,
      ),
      ratio:
        i === 0 || ratios.rps.length === 0
          ? null
          : { rps: spread(ratios.rps), cpuTotal: spread(ratios.cpuTotal), cpuMain: spread(ratios.cpuMain) },
    };
  });
}

const f2 = (s: Spread) => `${s.median.toFixed(3)} [${s.min.toFixed(3)}–${s.max.toFixed(3)}]`;

/** One line per variant: absolute medians, then the ratios to the first variant. */
export function renderAb(results: readonly AbVariantResult[], title: string): string {
  const lines = [title];
  for (const r of results) {
    const rps = spread(r.rps);
    const total = spread(r.cpuUsPerRequest.flatMap((c) => (c?.total ? [c.total] : [])));
    const main = spread(r.cpuUsPerRequest.flatMap((c) => (c?.main ? [c.main] : [])));
    const absolute = `${Math.round(rps.median)} req/s [${Math.round(rps.min)}–${Math.round(rps.max)}], CPU µs/req ${Math.round(total.median)} (main ${Math.round(main.median)}), non-2xx ${r.non2xx}, errors ${r.errors}`;
    const ratio = r.ratio
      ? `÷ ${results[0]!.name}, per pair: req/s ${f2(r.ratio.rps)}, CPU/req ${f2(r.ratio.cpuTotal)}, main ${f2(r.ratio.cpuMain)}`
      : 'baseline';
    lines.push(`${r.name.padEnd(24)} ${absolute}`, `${''.padEnd(24)} ${ratio}`);
  }
  return lines.join('\n');
}
