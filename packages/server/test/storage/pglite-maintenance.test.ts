/**
 * The embedded engine's autovacuum (src/storage/pglite/maintenance.ts): PGlite never runs ANALYZE or
 * VACUUM by itself, so the server does, with PostgreSQL's default thresholds. On the real schema,
 * the code-redemption UPDATE must stop scanning the whole `login_membership` index once the table is
 * analyzed — the plan the unanalyzed table gets is checked too, so the test shows why this exists.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Db, Queryable } from '../../src/storage/db.ts';
import { migrate } from '../../src/storage/migrations/index.ts';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';
import {
  FREEZE_AGE,
  type MaintenanceReport,
  maintenanceStatement,
  planMaintenance,
  startEmbeddedMaintenance,
  type TableActivity,
} from '../../src/storage/pglite/maintenance.ts';

const table = (over: Partial<TableActivity>): TableActivity => ({
  schema: 'public',
  table: 't',
  reltuples: 1000,
  relpages: 100,
  pages: 100,
  deadTuples: 0,
  modifiedSinceAnalyze: 0,
  insertedSinceVacuum: 0,
  xidAge: 10,
  ...over,
});

test('thresholds: PostgreSQL autovacuum defaults, plus growth read from the catalog', () => {
  const plan = (over: Partial<TableActivity>) =>
    planMaintenance([table(over)]).map((s) => ({ vacuum: s.vacuum, analyze: s.analyze }));
  const none: { vacuum: boolean; analyze: boolean }[] = [];
  assert.deepEqual(plan({}), none, 'a quiet table is left alone');
  // ANALYZE after 50 + 10 % of the rows changed.
  assert.deepEqual(plan({ modifiedSinceAnalyze: 150 }), none);
  assert.deepEqual(plan({ modifiedSinceAnalyze: 151 }), [{ vacuum: false, analyze: true }]);
  // VACUUM after 50 + 20 % dead rows, or 1000 + 20 % inserted rows, or near the freeze age.
  assert.deepEqual(plan({ deadTuples: 250 }), none);
  assert.deepEqual(plan({ deadTuples: 251 }), [{ vacuum: true, analyze: false }]);
  assert.deepEqual(plan({ insertedSinceVacuum: 1200 }), none);
  assert.deepEqual(plan({ insertedSinceVacuum: 1201 }), [{ vacuum: true, analyze: false }]);
  assert.deepEqual(plan({ xidAge: FREEZE_AGE + 1 }), [{ vacuum: true, analyze: false }]);
  assert.deepEqual(plan({ deadTuples: 300, modifiedSinceAnalyze: 300 }), [{ vacuum: true, analyze: true }]);
  // The counters start at zero in every process: growth since the last ANALYZE comes from the pages.
  assert.deepEqual(plan({ pages: 118 }), none);
  assert.deepEqual(plan({ pages: 119 }), [{ vacuum: false, analyze: true }]);
  // Never analyzed (reltuples -1): analyzed as soon as it holds anything.
  assert.deepEqual(plan({ reltuples: -1, relpages: 0, pages: 0 }), none);
  assert.deepEqual(plan({ reltuples: -1, relpages: 0, pages: 1 }), [{ vacuum: false, analyze: true }]);
});

test('statements name the table quoted, whatever its name', () => {
  const step = { schema: 'public', table: 'we"ird', vacuum: false, analyze: true };
  assert.equal(maintenanceStatement(step), 'ANALYZE "public"."we""ird"');
  assert.equal(maintenanceStatement({ ...step, vacuum: true }), 'VACUUM (ANALYZE) "public"."we""ird"');
  assert.equal(maintenanceStatement({ ...step, vacuum: true, analyze: false }), 'VACUUM "public"."we""ird"');
});

let db: Db;
const membership = '00000000-0000-4000-8000-000000000001';
const codes = Array.from({ length: 10 }, (_, i) => `code-digest-${i}`);
const redemption = `UPDATE login SET code_redeemed_at = now()
  WHERE code_digest = ANY('{${codes.join(',')}}'::text[]) AND code_redeemed_at IS NULL
    AND code_expires_at > now() AND revoked_at IS NULL RETURNING *`;
const plan = async () =>
  (await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${redemption}`)).map((r) => r['QUERY PLAN']).join('\n');

before(async () => {
  db = await createPgliteDb(undefined);
  await migrate(db);
  // 20,000 logins of one membership with single-use codes, as a busy project's sign-ins leave them.
  await db.query(
    `INSERT INTO login (id, user_ref, membership_id, project_id, profile_ref, scope, code_challenge,
       code_challenge_method, code_digest, code_expires_at, auth_method, auth_time)
     SELECT gen_random_uuid(), 'User/u', $1::uuid, gen_random_uuid(), 'Practitioner/p', 'openid', 'c', 'S256',
       'code-digest-' || g, now() + interval '1 hour', 'password', now()
     FROM generate_series(0, 19999) g`,
    [membership],
  );
});
after(() => db.close());

test('a pass analyzes the login table, and the code redemption stops scanning login_membership', async () => {
  // ANALYZE's sample stays small: what it allocates, the engine's WASM heap keeps (worker.js).
  const [target] = await db.query<{ default_statistics_target: string }>('SHOW default_statistics_target');
  assert.equal(target?.default_statistics_target, '10');
  // Unanalyzed, the planner takes `revoked_at IS NULL` as rare and ANDs the whole partial index in.
  assert.match(await plan(), /login_membership/);
  const maintenance = startEmbeddedMaintenance(db, { firstDelayMs: 60_000 });
  try {
    const report = await maintenance.runPass();
    assert.ok(
      // 20,000 inserts also cross the insert threshold: VACUUM (ANALYZE).
      report.steps.some((s) => s.statement === 'VACUUM (ANALYZE) "public"."login"'),
      JSON.stringify(report.steps),
    );
    const [login] = await db.query<{ reltuples: number }>(
      "SELECT reltuples::int AS reltuples FROM pg_class WHERE relname = 'login'",
    );
    assert.equal(login?.reltuples, 20_000);
    const after = await plan();
    assert.doesNotMatch(after, /login_membership/);
    assert.match(after, /login_code_digest/);
    // Nothing changed since: the next pass has nothing to do for this table.
    const again = await maintenance.runPass();
    assert.ok(!again.steps.some((s) => s.statement.includes('"login"')), JSON.stringify(again.steps));
  } finally {
    await maintenance.stop();
  }
});

test('dead rows past the threshold are vacuumed', async () => {
  const maintenance = startEmbeddedMaintenance(db, { firstDelayMs: 60_000 });
  try {
    await db.query(`UPDATE login SET revoked_at = now() WHERE code_digest < 'code-digest-5'`);
    const report = await maintenance.runPass();
    assert.ok(
      report.steps.some((s) => s.statement === 'VACUUM (ANALYZE) "public"."login"'),
      JSON.stringify(report.steps),
    );
    const [stats] = await db.query<{ vacuumed: boolean; dead: number }>(
      "SELECT last_vacuum IS NOT NULL AS vacuumed, n_dead_tup::int AS dead FROM pg_stat_user_tables WHERE relname = 'login'",
    );
    assert.deepEqual(stats, { vacuumed: true, dead: 0 });
  } finally {
    await maintenance.stop();
  }
});

test('passes run on their own timer; a failed pass is reported and the next one still runs; stop ends them', async () => {
  let calls = 0;
  // The real database behind a wrapper whose first statement fails (an engine error stand-in).
  const flaky: Queryable = {
    query: (sql, params) => (++calls === 1 ? Promise.reject(new Error('boom')) : db.query(sql, params)),
    exec: (sql) => db.exec(sql),
  };
  await db.query('CREATE TABLE scratch (n int)');
  await db.query('INSERT INTO scratch SELECT generate_series(1, 100)');
  const errors: unknown[] = [];
  const passes: MaintenanceReport[] = [];
  let passed!: () => void;
  const firstPass = new Promise<void>((resolve) => {
    passed = resolve;
  });
  const maintenance = startEmbeddedMaintenance(flaky, {
    firstDelayMs: 5,
    intervalMs: 20,
    onError: (err) => errors.push(err),
    onPass: (report) => {
      passes.push(report);
      passed();
    },
  });
  // The timers are unref'd (they never hold a process open): something must, while this test waits.
  const keepAlive = setInterval(() => {}, 1000);
  await firstPass;
  await maintenance.stop();
  clearInterval(keepAlive);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
  assert.ok(passes[0]?.steps.some((s) => s.statement === 'ANALYZE "public"."scratch"'));
  const count = calls;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(calls, count, 'no statement after stop()');
});
