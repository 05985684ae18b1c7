import assert from 'node:assert/strict';
import { test } from 'node:test';
import { autovacuumProblems } from '../../src/storage/autovacuum-check.ts';
import { createTestDatabase, ENGINES } from '../support/db.ts';

for (const engine of ENGINES) {
  test(`autovacuum check (${engine}): names the tables it is disabled for, and the server-wide switches`, async (t) => {
    const { db, drop } = await createTestDatabase(engine);
    t.after(drop);
    await db.exec(`
      CREATE TABLE av_default (id int);
      CREATE TABLE av_on (id int) WITH (autovacuum_enabled = true);
      CREATE TABLE av_off (id int) WITH (autovacuum_enabled = off);
      CREATE TABLE av_false (id int) WITH (autovacuum_enabled = false, fillfactor = 90);
      CREATE TABLE av_zero (id int) WITH (autovacuum_enabled = 0);
      CREATE TABLE av_prefix (id int) WITH (autovacuum_enabled = 'FALS');
      CREATE TABLE av_toast (id int) WITH (toast.autovacuum_enabled = off);
    `);
    const settings = await db.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts') ORDER BY name`,
    );
    // What this server's own switches say (this machine's CI PostgreSQL runs with autovacuum off).
    const expected = settings
      .filter(({ setting }) => setting === 'off')
      .map(({ name }) => `the server runs with ${name} = off`);
    // Every spelling PostgreSQL takes for false (a prefix, any case); the TOAST table's own option is
    // not the table's.
    expected.push('autovacuum is disabled for av_false, av_off, av_prefix, av_zero');
    assert.deepEqual(await autovacuumProblems(db), expected);

    await db.exec(`ALTER TABLE av_off RESET (autovacuum_enabled); ALTER TABLE av_false SET (autovacuum_enabled = on);
      DROP TABLE av_zero; DROP TABLE av_prefix`);
    assert.deepEqual(await autovacuumProblems(db), expected.slice(0, -1), 'no table left with it disabled');
  });
}
