import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Db } from '../../src/storage/db.ts';
import { createPostgresDb, MAX_PREPARED_STATEMENTS } from '../../src/storage/postgres.ts';
import { createThrowawayPostgres } from '../support/db.ts';

const skip = process.env.TEST_DATABASE_URL ? false : 'PostgreSQL only (TEST_DATABASE_URL)';

/** One connection, so that `pg_prepared_statements` (per session) shows what the pool prepared. */
async function onOneConnection(t: { after(fn: () => Promise<void>): void }, preparedStatements?: boolean) {
  const { url, drop } = await createThrowawayPostgres();
  const db = createPostgresDb(url, {
    max: 1,
    ...(preparedStatements === undefined ? {} : { preparedStatements }),
  });
  t.after(async () => {
    await db.close();
    await drop();
  });
  return db;
}

const prepared = (db: Db) =>
  db.query<{ name: string; statement: string }>(
    'SELECT name, statement FROM pg_prepared_statements ORDER BY name',
  );

test('postgres: a statement with parameters is prepared once per connection, then reused', {
  skip,
}, async (t) => {
  const db = await onOneConnection(t);
  const sql = 'SELECT $1::int + 1 AS n';
  for (let i = 0; i < 3; i++) assert.deepEqual(await db.query(sql, [i]), [{ n: i + 1 }]);
  assert.deepEqual(await prepared(db), [{ name: 'fedhir_0', statement: sql }]);
  // Without parameters: a simple query, never prepared (it may hold several statements).
  await db.query('SELECT 1');
  assert.equal((await prepared(db)).length, 1);
  // In a transaction, on its connection, under the same name.
  await db.transaction(async (tx) => assert.deepEqual(await tx.query(sql, [41]), [{ n: 42 }]));
  assert.equal((await prepared(db)).length, 1);
});

test('postgres: DATABASE_PREPARED_STATEMENTS=false prepares nothing', { skip }, async (t) => {
  const db = await onOneConnection(t, false);
  assert.deepEqual(await db.query('SELECT $1::int + 1 AS n', [1]), [{ n: 2 }]);
  assert.deepEqual(await prepared(db), []);
});

test(`postgres: at most ${MAX_PREPARED_STATEMENTS} statements are prepared; later ones still run`, {
  skip,
}, async (t) => {
  const db = await onOneConnection(t);
  for (let i = 0; i < MAX_PREPARED_STATEMENTS + 10; i++) {
    assert.deepEqual(await db.query(`SELECT $1::int + ${i} AS n`, [1]), [{ n: i + 1 }]);
  }
  assert.equal((await prepared(db)).length, MAX_PREPARED_STATEMENTS);
});

test('postgres: a prepared statement whose result columns changed is prepared again (SQLSTATE 0A000)', {
  skip,
}, async (t) => {
  const db = await onOneConnection(t);
  await db.exec('CREATE TABLE shape (a int); INSERT INTO shape VALUES (1)');
  const sql = 'SELECT * FROM shape WHERE a = $1';
  assert.deepEqual(await db.query(sql, [1]), [{ a: 1 }]);
  // What another instance's migration does while this one holds the statement prepared.
  await db.exec('ALTER TABLE shape ADD COLUMN b int DEFAULT 2');
  assert.deepEqual(await db.query(sql, [1]), [{ a: 1, b: 2 }]);
  assert.deepEqual(await db.query(sql, [1]), [{ a: 1, b: 2 }], 'and stays usable');
  // Inside a transaction the aborted transaction fails as a whole; the next use is prepared afresh.
  await db.exec('ALTER TABLE shape ADD COLUMN c int DEFAULT 3');
  await assert.rejects(
    db.transaction((tx) => tx.query(sql, [1])),
    (err: Error & { code?: string }) => err.code === '0A000',
  );
  await db.transaction(async (tx) => assert.deepEqual(await tx.query(sql, [1]), [{ a: 1, b: 2, c: 3 }]));
});
