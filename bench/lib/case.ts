/**
 * The case interface. Each file in bench/cases/ (except those starting with `_`) default-exports one
 * `BenchCase` (or an array of them). See bench/cases/README.md.
 */
import type { LoadSpec } from './measure.ts';
import type { Child, SpawnOptions } from './spawn.ts';

export type { LoadSpec, RequestOverride } from './measure.ts';

/** The reference servers in bench/refs/ (file names without `.ts`). */
export type RefName =
  | 'peer-oidc-provider'
  | 'sign-ceiling'
  | 'exchange-ceiling'
  | 'read-ceiling'
  | 'userinfo-server';

export interface Target {
  /** Required: median over rounds of (this case's req/s ÷ the reference's req/s in the same round). */
  ratio: number;
  /** Also require this case's p99 (median over rounds) ≤ the reference's p99. */
  alsoP99AtMostReference?: boolean;
}

export interface ExtraTarget extends Target {
  /** Name of another case to compare against. */
  reference: string;
}

/** Sums over every round, warm-ups included, handed to `check()`. */
export interface CaseTotals {
  ok2xx: number;
  non2xx: number;
  errors: number;
  rounds: number;
}

/**
 * One variant of the fedhir server for an A/B comparison (`--ab`): Node flags and variables added to
 * what `npm start` runs, or another checkout (`root`, its dependencies installed) built and started
 * instead of this one.
 */
export interface FedhirVariant {
  name: string;
  nodeArgs?: string[];
  env?: Record<string, string>;
  root?: string;
}

export interface CaseContext {
  engine: 'pglite' | 'postgres';
  /** Set in an A/B comparison: the fedhir server the case starts is this variant. */
  variant?: FedhirVariant;
  /** BENCH_DATABASE_URL, when set (production mode). */
  databaseUrl: string | undefined;
  /** BENCH_REDIS_URL, when set (production mode). */
  redisUrl: string | undefined;
  /** True for `--quick` smoke runs. */
  quick: boolean;
  repoRoot: string;
  benchDir: string;
  /**
   * Starts `node --import tsx <file>` (path absolute or relative to the repo root); waits for its
   * `{"port":N}` line, or for `opts.readyUrl` to answer 2xx. Stopped automatically after `teardown`.
   */
  spawn(file: string, opts?: SpawnOptions): Promise<Child>;
  /** Starts one of bench/refs/ with `refEnv()` added to its environment. */
  spawnRef(name: RefName, opts?: SpawnOptions): Promise<Child>;
  /**
   * Environment for a server that must use the same database engine as the server under test:
   * `BENCH_DATABASE_URL` when set, otherwise `BENCH_PGLITE_DIR` = a fresh temp dir (removed at exit).
   */
  refEnv(): Record<string, string>;
  /**
   * Run-wide memo: the first call with `key` runs `start` (with a context whose children live until the
   * end of the run, not of this case); later calls — from any case — get the same promise. Use it for
   * one fedhir server shared by all fedhir cases.
   */
  shared<T>(key: string, start: (ctx: CaseContext) => Promise<T>): Promise<T>;
  /** A 127.0.0.1 port that was free a moment ago (for a server that cannot announce port 0). */
  freePort(): Promise<number>;
  /** A fresh directory under the OS temp dir, removed when the run ends. */
  tempDir(prefix?: string): string;
  log(message: string): void;
}

export interface BenchCase {
  /** Unique; what `--cases` matches (case-insensitive, also by file name). */
  name: string;
  /** Name of the case whose req/s this one is divided by, or null when this case is a reference. */
  reference: string | null;
  /** Required when `reference` is set. */
  target?: Target;
  /** Further references the same case is held to (e.g. client_credentials ≥ 0.7× sign ceiling). */
  alsoAgainst?: ExtraTarget[];
  /** RSS limit for `rssPid`, MB. Default: 250 for cases with a reference, none for references. */
  maxRssMb?: number;
  /** One-line description, shown by `--list`. */
  description?: string;
  /**
   * Start what the case needs (via `ctx.spawn` / `ctx.spawnRef`), create its fixtures, and return the
   * load to fire. Called once before the first round. Throw with a clear message when something is
   * wrong (the run then reports the case as not measured and goes on).
   */
  setup(ctx: CaseContext): Promise<LoadSpec>;
  /** After all rounds: extra failure reasons (empty = fine), e.g. "1 provider call per token". */
  check?(ctx: CaseContext, totals: CaseTotals): Promise<string[]>;
  /** Optional clean-up; children started through `ctx` are stopped afterwards anyway. */
  teardown?(ctx: CaseContext): Promise<void>;
}

/** Identity function that gives a case file its types. */
export function defineCase(c: BenchCase): BenchCase {
  return c;
}
