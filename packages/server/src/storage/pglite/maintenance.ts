/**
 * The embedded engine's autovacuum. PGlite runs PostgreSQL as a single-user backend: no autovacuum
 * launcher, so nothing ever runs ANALYZE or VACUUM by itself. Without ANALYZE the planner works from
 * default selectivities — it takes `revoked_at IS NULL` (the predicate of `login_membership`) as
 * matching 0.5 % of logins, so the code-redemption UPDATE scanned that whole partial index once per
 * batch, a cost that grew with every login ever written (docs/performance.md, 2026-12-06). Without
 * VACUUM, dead index entries and free space are never reclaimed, and rows are never frozen: a
 * single-user backend only warns as transaction ids near wraparound (the stop limit applies under a
 * postmaster), so unfrozen rows would be lost when the counter wraps. The template databases cannot
 * be vacuumed from here (one database per backend): their datfrozenxid stays put, so PostgreSQL
 * never truncates pg_xact (2 bits a transaction on disk); only `postgres`'s rows need freezing.
 *
 * This runs what autovacuum would, with PostgreSQL's default thresholds (postgresql.org/docs/current/
 * routine-vacuuming.html §24.1.6), from the server's thread through the same single connection:
 * a statement queues behind the requests' statements and holds the engine while it runs, so passes
 * are spaced out and each one does only what the thresholds call for.
 *
 * PostgreSQL mode never starts this: its own autovacuum does the same work in the background.
 */
import type { Queryable } from '../db.ts';

/** What one table looks like to the thresholds (pg_stat_user_tables joined with pg_class). */
export interface TableActivity {
  schema: string;
  table: string;
  /** pg_class.reltuples: the row estimate of the last ANALYZE/VACUUM, -1 when never run. */
  reltuples: number;
  /** pg_class.relpages at the last ANALYZE/VACUUM. */
  relpages: number;
  /** Pages the table has now. */
  pages: number;
  deadTuples: number;
  modifiedSinceAnalyze: number;
  insertedSinceVacuum: number;
  /** age(relfrozenxid): transactions since the table's rows were last frozen. */
  xidAge: number;
}

/** One statement of a pass. */
export interface MaintenanceStep {
  schema: string;
  table: string;
  vacuum: boolean;
  analyze: boolean;
}

/** PostgreSQL's autovacuum defaults (guc_tables.c): base thresholds and scale factors. */
const VACUUM_THRESHOLD = 50;
const VACUUM_SCALE = 0.2;
const INSERT_VACUUM_THRESHOLD = 1000;
const INSERT_VACUUM_SCALE = 0.2;
const ANALYZE_THRESHOLD = 50;
const ANALYZE_SCALE = 0.1;
/** Growth since the last ANALYZE, in pages beyond the scale factor, that calls for another one. */
const ANALYZE_GROWTH_PAGES = 8;
/** vacuum_freeze_table_age: from this age a VACUUM scans the whole table and freezes. */
export const FREEZE_AGE = 150_000_000;

/**
 * Decides which tables to ANALYZE and which to VACUUM. The activity counters live in memory and are
 * lost when the process stops, so a table's growth since its last ANALYZE is also read from the
 * catalog (pages now against relpages), which survives restarts: the first pass after a start
 * analyzes what the previous run changed.
 */
export function planMaintenance(tables: readonly TableActivity[]): MaintenanceStep[] {
  const steps: MaintenanceStep[] = [];
  for (const t of tables) {
    const known = t.reltuples >= 0;
    const rows = known ? t.reltuples : 0;
    const analyze = known
      ? t.modifiedSinceAnalyze > ANALYZE_THRESHOLD + ANALYZE_SCALE * rows ||
        t.pages > ANALYZE_GROWTH_PAGES + t.relpages * (1 + ANALYZE_SCALE)
      : t.pages > 0 || t.modifiedSinceAnalyze > 0;
    const vacuum =
      t.deadTuples > VACUUM_THRESHOLD + VACUUM_SCALE * rows ||
      t.insertedSinceVacuum > INSERT_VACUUM_THRESHOLD + INSERT_VACUUM_SCALE * rows ||
      t.xidAge > FREEZE_AGE;
    if (analyze || vacuum) steps.push({ schema: t.schema, table: t.table, vacuum, analyze });
  }
  return steps;
}

/** A double-quoted SQL identifier (names come from the catalog; quoting keeps any name literal). */
const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function maintenanceStatement(step: MaintenanceStep): string {
  const target = `${ident(step.schema)}.${ident(step.table)}`;
  if (step.vacuum) return step.analyze ? `VACUUM (ANALYZE) ${target}` : `VACUUM ${target}`;
  return `ANALYZE ${target}`;
}

const ACTIVITY_SQL = `
  SELECT s.schemaname AS schema, s.relname AS "table", c.reltuples::float8 AS reltuples,
    c.relpages::int AS relpages,
    (pg_relation_size(c.oid) / current_setting('block_size')::int)::int AS pages,
    s.n_dead_tup::int8 AS "deadTuples", s.n_mod_since_analyze::int8 AS "modifiedSinceAnalyze",
    s.n_ins_since_vacuum::int8 AS "insertedSinceVacuum", age(c.relfrozenxid)::int8 AS "xidAge"
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid`;

/** age(datfrozenxid) of this database: old when the system catalogs need freezing too. */
const DATABASE_AGE_SQL = `SELECT age(datfrozenxid)::int8 AS age FROM pg_database WHERE datname = current_database()`;

export interface MaintenanceReport {
  steps: { statement: string; ms: number }[];
  /** A database-wide VACUUM ran (catalogs included) because of transaction-id age. */
  databaseVacuum: boolean;
  ms: number;
}

export interface MaintenanceOptions {
  /** Delay before the first pass (the server answers its first requests meanwhile). Default 2 s. */
  firstDelayMs?: number;
  /** Time between the end of one pass and the start of the next. Default 60 s. */
  intervalMs?: number;
  /** Called after each pass that ran at least one statement. */
  onPass?: (report: MaintenanceReport) => void;
  /** Called when a pass fails; the next one runs as scheduled. */
  onError?: (err: unknown) => void;
}

export interface Maintenance {
  /** Runs one pass now (after the one in progress, if any) and answers what it did. */
  runPass(): Promise<MaintenanceReport>;
  /** No pass starts after this; resolves once the one in progress (if any) has finished. */
  stop(): Promise<void>;
}

/** Starts periodic maintenance of the embedded database. Timers never keep the process alive. */
export function startEmbeddedMaintenance(db: Queryable, options: MaintenanceOptions = {}): Maintenance {
  const intervalMs = options.intervalMs ?? 60_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<MaintenanceReport> = Promise.resolve({ steps: [], databaseVacuum: false, ms: 0 });

  const pass = async (): Promise<MaintenanceReport> => {
    const started = performance.now();
    const steps: MaintenanceReport['steps'] = [];
    // A backend publishes its activity counters at most once a second, after a statement ends; a
    // forced flush makes this pass see the writes up to now.
    await db.query('SELECT pg_stat_force_next_flush()');
    const activity = await db.query<TableActivity>(ACTIVITY_SQL);
    for (const step of planMaintenance(activity.map(numeric))) {
      if (stopped) break;
      const statement = maintenanceStatement(step);
      const t0 = performance.now();
      await db.query(statement);
      steps.push({ statement, ms: performance.now() - t0 });
    }
    const [database] = await db.query<{ age: number | string }>(DATABASE_AGE_SQL);
    const databaseVacuum = !stopped && Number(database?.age ?? 0) > FREEZE_AGE;
    if (databaseVacuum) await db.query('VACUUM');
    return { steps, databaseVacuum, ms: performance.now() - started };
  };

  const runPass = () => {
    running = running.catch(() => undefined).then(pass);
    return running;
  };

  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(async () => {
      try {
        const report = await runPass();
        if (report.steps.length > 0 || report.databaseVacuum) options.onPass?.(report);
      } catch (err) {
        if (!stopped) options.onError?.(err);
      }
      schedule(intervalMs);
    }, delay);
    timer.unref();
  };
  schedule(options.firstDelayMs ?? 2_000);

  return {
    runPass,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running.catch(() => undefined);
    },
  };
}

/** The counters are int8, which a driver may hand over as strings or bigints; the thresholds want numbers. */
function numeric(row: TableActivity): TableActivity {
  return {
    ...row,
    reltuples: Number(row.reltuples),
    relpages: Number(row.relpages),
    pages: Number(row.pages),
    deadTuples: Number(row.deadTuples),
    modifiedSinceAnalyze: Number(row.modifiedSinceAnalyze),
    insertedSinceVacuum: Number(row.insertedSinceVacuum),
    xidAge: Number(row.xidAge),
  };
}
