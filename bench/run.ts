/**
 * fedhir benchmark runner — `npm run bench -- [options]` (see bench/cases/README.md).
 *
 *   --cases a,b      run only these cases (by name or file name; their references come along)
 *   --rounds N       rounds, default 3 (medians of rounds are reported)
 *   --duration S     measured seconds per case and round, 10–15 (default 10); a 2 s warm-up precedes
 *   --quick          smoke run: 1 round of 3 s after a 1 s warm-up (no 10–15 s check)
 *   --out FILE       results file, default bench/results/latest.json
 *   --list           list the cases and exit
 *   --ab VARIANTS    paired A/B of fedhir variants on one fedhir case (lib/ab.ts): a JSON array, or a
 *                    file holding one, of {"name", "nodeArgs"?, "env"?, "root"?}; with --pairs N
 *                    (default 12) and --seconds S per variant and pair (default 4)
 *   --fresh-database with BENCH_DATABASE_URL: run on `<its database>_fresh`, dropped and created
 *                    empty first (lib/fresh-database.ts), so production runs start from equal tables
 *
 * Engine: PGlite (embedded) by default; PostgreSQL when BENCH_DATABASE_URL is set (and Redis at
 * BENCH_REDIS_URL, for the server under test). Every server is a child process on 127.0.0.1; every
 * child is killed on exit, on error and on Ctrl-C. Prints one table; writes the results JSON.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseVariants, renderAb, runPairs } from './lib/ab.ts';
import type { BenchCase, CaseContext, CaseTotals, FedhirVariant, RefName } from './lib/case.ts';
import { type CaseRun, SIGN_CEILING, summarize } from './lib/evaluate.ts';
import { fedhirSharedKey } from './lib/fedhir.ts';
import { freshDatabase } from './lib/fresh-database.ts';
import { type LoadSpec, type Measurement, measure } from './lib/measure.ts';
import { probe } from './lib/probe.ts';
import { writeResults } from './lib/results.ts';
import { runRounds } from './lib/rounds.ts';
import {
  type Child,
  freePort,
  installExitHandlers,
  REPO_ROOT,
  type SpawnOptions,
  sleep,
  spawnServer,
} from './lib/spawn.ts';
import { renderTable } from './lib/table.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const CASES_DIR = path.join(BENCH_DIR, 'cases');
const CONNECTIONS = 50;
const SETUP_TIMEOUT_MS = 180_000;
const HOOK_TIMEOUT_MS = 30_000;

/**
 * Order of the references inside a round. Each reference is followed at once by the cases measured
 * against it (in file order), so a case and its reference run seconds apart, not minutes: the
 * machine's speed drifts under sustained load (docs/performance.md, 2026-12-04: with the PGlite
 * ceilings' 50 s of two-core RSA work between them, client_credentials cost 15–20 % more CPU per
 * token than right after its references, which did not see that load).
 */
const REFERENCE_ORDER = [
  SIGN_CEILING,
  'peer client_credentials',
  'exchange ceiling',
  'exchange-miss ceiling',
  'verify ceiling',
  'read ceiling',
];

const log = (msg: string) => process.stderr.write(`${msg}\n`);

// ---------------------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    cases: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    list: { type: 'boolean', default: false },
    ab: { type: 'string' },
    pairs: { type: 'string' },
    seconds: { type: 'string' },
    'fresh-database': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  const head = (await import('node:fs')).readFileSync(fileURLToPath(import.meta.url), 'utf8');
  log(head.slice(head.indexOf('/**'), head.indexOf('*/') + 2));
  process.exit(0);
}

const quick = opt.quick === true;
const rounds = opt.rounds !== undefined ? Number(opt.rounds) : quick ? 1 : 3;
const durationSec = opt.duration !== undefined ? Number(opt.duration) : quick ? 3 : 10;
const warmupSec = quick ? 1 : 2;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) usage('--rounds must be an integer 1–20');
if (!Number.isFinite(durationSec) || durationSec <= 0) usage('--duration must be a positive number');
if (!quick && (durationSec < 10 || durationSec > 15))
  usage('--duration must be 10–15 s (shared/spec/performance.md, Method); use --quick for a short smoke run');

async function chooseDatabase(url: string | undefined): Promise<string | undefined> {
  if (!opt['fresh-database']) return url;
  if (!url) usage('--fresh-database needs BENCH_DATABASE_URL (the embedded engine starts empty anyway)');
  try {
    const fresh = await freshDatabase(url);
    log(`bench: fresh database ${new URL(fresh).pathname.slice(1)}`);
    return fresh;
  } catch (e) {
    usage(`--fresh-database: could not create the database: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function usage(msg: string): never {
  log(`bench: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------------
// Cases: every bench/cases/*.ts not starting with `_` default-exports a BenchCase or an array of them.

interface Discovered {
  def: BenchCase;
  file: string;
}

async function discover(): Promise<Discovered[]> {
  const files = readdirSync(CASES_DIR)
    .filter((f) => f.endsWith('.ts') && !f.startsWith('_') && !f.endsWith('.d.ts'))
    .sort();
  const found: Discovered[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(path.join(CASES_DIR, file)).href)) as { default?: unknown };
    const list = Array.isArray(mod.default) ? mod.default : [mod.default];
    for (const def of list as BenchCase[]) {
      if (!def || typeof def.name !== 'string' || typeof def.setup !== 'function')
        throw new Error(`bench/cases/${file}: default export is not a BenchCase`);
      if (def.reference && !def.target)
        throw new Error(`bench/cases/${file}: "${def.name}" has a reference but no target`);
      if (found.some((d) => d.def.name === def.name)) throw new Error(`duplicate case name "${def.name}"`);
      found.push({ def, file: file.replace(/\.ts$/, '') });
    }
  }
  for (const { def } of found) {
    for (const r of [def.reference, ...(def.alsoAgainst ?? []).map((a) => a.reference)])
      if (r && !found.some((d) => d.def.name === r))
        throw new Error(`case "${def.name}": unknown reference "${r}"`);
  }
  return found;
}

function select(all: Discovered[], wanted: string | undefined): Discovered[] {
  // A file name selects every case the file exports.
  const byKey = (key: string) =>
    all.filter(
      (d) => d.def.name.toLowerCase() === key.toLowerCase() || d.file.toLowerCase() === key.toLowerCase(),
    );
  let chosen: Discovered[];
  if (wanted) {
    chosen = [];
    // A case name may itself hold a comma ("token exchange, jwks"): try the whole list as one name first.
    const keys = byKey(wanted.trim()).length > 0 ? [wanted.trim()] : wanted.split(',').map((s) => s.trim());
    for (const key of keys.filter(Boolean)) {
      const found = byKey(key);
      if (found.length === 0)
        usage(`unknown case "${key}"; known: ${all.map((c) => `"${c.def.name}"`).join(', ')}`);
      chosen.push(...found);
    }
  } else chosen = [...all];
  // Bring the references along (transitively), and the sign ceiling whenever a case has a target.
  const names = new Set(chosen.map((d) => d.def.name));
  const queue = [...chosen];
  if (chosen.some((d) => d.def.reference)) queue.push(...all.filter((d) => d.def.name === SIGN_CEILING));
  while (queue.length) {
    const d = queue.shift()!;
    names.add(d.def.name);
    for (const r of [d.def.reference, ...(d.def.alsoAgainst ?? []).map((a) => a.reference)]) {
      const ref = r ? all.find((x) => x.def.name === r) : undefined;
      if (ref && !names.has(ref.def.name)) queue.push(ref);
    }
  }
  // A reference ranks by REFERENCE_ORDER (others after those); a case right after its reference.
  const referenceRank = (name: string) => {
    const i = REFERENCE_ORDER.indexOf(name);
    const other = all.findIndex((x) => x.def.name === name);
    return (i >= 0 ? i : REFERENCE_ORDER.length + Math.max(other, 0)) * 1000;
  };
  const rank = (d: Discovered) =>
    d.def.reference ? referenceRank(d.def.reference) + 1 + all.indexOf(d) : referenceRank(d.def.name);
  return all.filter((d) => names.has(d.def.name)).sort((a, b) => rank(a) - rank(b));
}

// ---------------------------------------------------------------------------------------------------
// Context given to each case

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const databaseUrl = await chooseDatabase(process.env.BENCH_DATABASE_URL || undefined);
const redisUrl = process.env.BENCH_REDIS_URL || undefined;
const engine = databaseUrl ? 'postgres' : 'pglite';

/** Children started through `ctx.shared()`: stopped at the end of the run. */
const sharedChildren: Child[] = [];
const sharedValues = new Map<string, Promise<unknown>>();

function makeContext(caseName: string, children: Child[], variant?: FedhirVariant): CaseContext {
  const tempDir = (prefix = 'tmp-') => {
    const d = mkdtempSync(path.join(os.tmpdir(), `fedhir-bench-${prefix}`));
    tempDirs.push(d);
    return d;
  };
  const refEnv = (): Record<string, string> =>
    databaseUrl ? { BENCH_DATABASE_URL: databaseUrl } : { BENCH_PGLITE_DIR: tempDir('pglite-') };
  const spawn = async (file: string, opts: SpawnOptions = {}) => {
    const child = await spawnServer(path.resolve(REPO_ROOT, file), opts);
    children.push(child);
    return child;
  };
  return {
    engine,
    ...(variant ? { variant } : {}),
    databaseUrl,
    redisUrl,
    quick,
    repoRoot: REPO_ROOT,
    benchDir: BENCH_DIR,
    spawn,
    spawnRef: (name: RefName, opts: SpawnOptions = {}) =>
      spawn(path.join(BENCH_DIR, 'refs', `${name}.ts`), { ...opts, env: { ...refEnv(), ...opts.env } }),
    refEnv,
    shared: <T>(key: string, start: (c: CaseContext) => Promise<T>): Promise<T> => {
      let v = sharedValues.get(key) as Promise<T> | undefined;
      if (!v) {
        v = start(makeContext(`shared ${key}`, sharedChildren));
        sharedValues.set(key, v);
      }
      return v;
    },
    freePort,
    tempDir,
    log: (m) => log(`  [${caseName}] ${m}`),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    sleep(ms).then(() => Promise.reject(new Error(`${what} took more than ${ms / 1000} s`))),
  ]);
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------------------
// Main

interface Prepared {
  run: CaseRun;
  ctx: CaseContext;
  children: Child[];
  load?: LoadSpec;
}

let stopping = false;
let running: { stop(): void } | undefined;
const prepared: Prepared[] = [];

async function stopCase(p: Prepared): Promise<void> {
  try {
    if (p.run.def.teardown) await withTimeout(p.run.def.teardown(p.ctx), HOOK_TIMEOUT_MS, 'teardown');
  } catch (e) {
    log(`  [${p.run.def.name}] teardown failed: ${errText(e)}`);
  }
  await Promise.all(p.children.map((c) => c.stop()));
}

installExitHandlers(async () => {
  stopping = true;
  running?.stop();
  await Promise.all([...prepared.flatMap((p) => p.children), ...sharedChildren].map((c) => c.stop()));
});

const all = await discover();
if (opt.list) {
  for (const d of all)
    log(
      `${d.def.name.padEnd(28)} ${d.def.reference ? `vs ${d.def.reference}` : 'reference'} — ${d.def.description ?? d.file}`,
    );
  process.exit(0);
}
if (opt.ab !== undefined) {
  await compareVariants(opt.ab);
  process.exit(process.exitCode ?? 0);
}
const selected = select(all, opt.cases);
const startedAt = new Date();
const loadAtStart = os.loadavg()[0]!;
log(
  `bench: ${selected.length} cases × ${rounds} round(s) × (${warmupSec} s warm-up + ${durationSec} s), -c ${CONNECTIONS}, engine ${engine}${quick ? ' [quick]' : ''}`,
);

try {
  // Setup, once per case, before the first round.
  for (const d of selected) {
    if (stopping) break;
    const children: Child[] = [];
    const p: Prepared = {
      run: { def: d.def, rounds: [], checkFailures: [] },
      ctx: makeContext(d.def.name, children),
      children,
    };
    prepared.push(p);
    const t0 = Date.now();
    try {
      p.load = await withTimeout(d.def.setup(p.ctx), SETUP_TIMEOUT_MS, 'setup');
      await probe(p.load);
      log(`  setup ${d.def.name}: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      p.run.error = `setup failed: ${errText(e)}`;
      log(`  setup ${d.def.name}: FAILED — ${errText(e)}`);
      await stopCase(p);
    }
  }

  // Rounds: each round runs every case once, each reference followed by its cases.
  await runRounds(
    rounds,
    prepared,
    async (p, round) => {
      if (!p.load || p.run.error) return;
      let m: Measurement;
      try {
        m = await measure(p.load, {
          warmupSec,
          durationSec,
          connections: CONNECTIONS,
          onInstance: (i) => {
            running = i;
          },
        });
      } catch (e) {
        // This case is skipped from now on; the others go on.
        p.run.error = `round ${round}: ${errText(e)}`;
        log(`  round ${round}/${rounds} ${p.run.def.name}: FAILED — ${errText(e)}`);
        return;
      }
      p.run.rounds.push(m);
      const s = m.measured;
      log(
        `  round ${round}/${rounds} ${p.run.def.name}: ${Math.round(s.rps)} req/s, p50 ${s.p50} ms, p99 ${s.p99} ms, non-2xx ${s.non2xx + m.warmup.non2xx}, errors ${s.errors + m.warmup.errors}, RSS ${m.rssPeakMb?.toFixed(0) ?? '—'} MB${m.cpuUsPerRequest ? `, CPU µs/req ${JSON.stringify(m.cpuUsPerRequest)}` : ''}`,
      );
    },
    () => stopping,
  );

  // Checks after the rounds (e.g. provider calls per distinct token).
  for (const p of prepared) {
    if (!p.run.def.check || !p.load || p.run.rounds.length === 0) continue;
    const totals: CaseTotals = {
      rounds: p.run.rounds.length,
      ok2xx: p.run.rounds.reduce((n, m) => n + m.warmup.ok2xx + m.measured.ok2xx, 0),
      non2xx: p.run.rounds.reduce((n, m) => n + m.warmup.non2xx + m.measured.non2xx, 0),
      errors: p.run.rounds.reduce((n, m) => n + m.warmup.errors + m.measured.errors, 0),
    };
    try {
      p.run.checkFailures = await withTimeout(p.run.def.check(p.ctx, totals), HOOK_TIMEOUT_MS, 'check');
    } catch (e) {
      p.run.checkFailures = [`check failed: ${errText(e)}`];
    }
  }
} finally {
  await Promise.all(prepared.map(stopCase));
  await Promise.all(sharedChildren.map((c) => c.stop()));
}

const summaries = summarize(prepared.map((p) => p.run));
const title = `fedhir bench — ${startedAt.toISOString()} — ${rounds} round(s) × ${durationSec} s, -c ${CONNECTIONS}, engine ${engine}, node ${process.version}, ${os.cpus().length} CPUs, load avg ${loadAtStart.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}${quick ? ' — QUICK SMOKE RUN (not a measurement)' : ''}${stopping ? ' — INTERRUPTED' : ''}`;
process.stdout.write(`\n${renderTable(summaries, title)}\n`);

const out = writeResults(
  {
    meta: {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      interrupted: stopping,
      quick,
      rounds,
      durationSec,
      warmupSec,
      connections: CONNECTIONS,
      engine,
      redis: Boolean(redisUrl),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavgAtStart: loadAtStart,
      loadavgAtEnd: os.loadavg(),
      commit: gitCommit(),
      cases: selected.map((d) => d.def.name),
    },
    cases: summaries,
    raw: prepared.map((p) => ({ name: p.run.def.name, error: p.run.error ?? null, rounds: p.run.rounds })),
  },
  opt.out ? path.resolve(opt.out) : undefined,
);
log(`bench: results written to ${path.relative(process.cwd(), out)}`);
process.exitCode = summaries.every((s) => s.verdict === 'pass' || s.verdict === 'ok') && !stopping ? 0 : 1;

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

/**
 * `--ab`: the one case named by --cases, set up once per variant (each its own fedhir server, side by
 * side), then measured in alternating pairs (lib/ab.ts). Prints the comparison and writes
 * bench/results/ab-latest.json (or --out). Exit code 1 when a variant answered non-2xx or errors.
 */
async function compareVariants(arg: string): Promise<void> {
  let variants: FedhirVariant[];
  try {
    variants = parseVariants(arg);
  } catch (e) {
    usage(errText(e));
  }
  const chosen = opt.cases
    ? all.filter((d) => d.def.name.toLowerCase() === opt.cases!.trim().toLowerCase())
    : [];
  if (chosen.length !== 1) usage('--ab compares one case: name it exactly with --cases');
  const def = chosen[0]!.def;
  const pairs = Number(opt.pairs ?? 12);
  const seconds = Number(opt.seconds ?? 4);
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > 100) usage('--pairs must be an integer 1–100');
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 60) usage('--seconds must be 1–60');
  const startedAt = new Date();
  const loads: { name: string; load: LoadSpec }[] = [];
  try {
    for (const variant of variants) {
      const children: Child[] = [];
      const p: Prepared = {
        run: { def, rounds: [], checkFailures: [] },
        ctx: makeContext(`${def.name} (${variant.name})`, children, variant),
        children,
      };
      prepared.push(p);
      const load = await withTimeout(def.setup(p.ctx), SETUP_TIMEOUT_MS, `setup of ${variant.name}`);
      await probe(load);
      // A case that does not start fedhir through fedhirServer would ignore the variant.
      if (!sharedValues.has(fedhirSharedKey(variant)))
        usage(`"${def.name}" does not start the fedhir server (fedhirServer): no variant to compare`);
      loads.push({ name: variant.name, load });
      log(`  setup ${def.name} (${variant.name}): ready`);
    }
    const results = await runPairs(loads, {
      pairs,
      seconds,
      warmupSec: 1,
      firstWarmupSec: 5,
      connections: CONNECTIONS,
      shouldStop: () => stopping,
      log,
    });
    const title = `fedhir bench A/B — ${startedAt.toISOString()} — "${def.name}", ${pairs} pairs × ${seconds} s, -c ${CONNECTIONS}, engine ${engine}, node ${process.version}, ${os.cpus().length} CPUs${stopping ? ' — INTERRUPTED' : ''}`;
    process.stdout.write(`\n${renderAb(results, title)}\n`);
    const out = writeResults(
      {
        meta: {
          startedAt: startedAt.toISOString(),
          case: def.name,
          pairs,
          seconds,
          engine,
          commit: gitCommit(),
          variants,
        },
        results,
      },
      opt.out ? path.resolve(opt.out) : path.join(BENCH_DIR, 'results', 'ab-latest.json'),
    );
    log(`bench: results written to ${path.relative(process.cwd(), out)}`);
    process.exitCode = results.every((r) => r.non2xx === 0 && r.errors === 0) && !stopping ? 0 : 1;
  } finally {
    await Promise.all(prepared.map(stopCase));
    await Promise.all(sharedChildren.map((c) => c.stop()));
  }
}
