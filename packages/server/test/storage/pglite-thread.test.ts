/**
 * The embedded engine runs on its own worker thread (src/storage/pglite/): what crosses the thread
 * boundary must arrive intact, transactions must keep the connection to themselves, database
 * errors must keep the fields the repositories read, and a closed database must answer at once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Db, PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode } from '../../src/storage/db.ts';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';

let db: Db;
before(async () => {
  db = await createPgliteDb(undefined);
  await db.exec(`CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
    CREATE TABLE item (id uuid PRIMARY KEY, name text NOT NULL UNIQUE, data jsonb, raw bytea, at timestamptz);
    INSERT INTO counter VALUES (1, 0);`);
});
after(() => db.close());

test('rows cross the thread with their types: jsonb objects, bytea bytes, timestamptz Dates, NULLs', async () => {
  const at = new Date('2026-01-02T03:04:05.678Z');
  const [row] = await db.query<{ data: unknown; raw: Uint8Array; at: Date; missing: null }>(
    `INSERT INTO item (id, name, data, raw, at) VALUES (gen_random_uuid(), 'typed', $1::jsonb, $2, $3)
     RETURNING data, raw, at, NULL AS missing`,
    [JSON.stringify({ a: [1, 'two', { three: true }] }), new Uint8Array([0, 1, 254, 255]), at.toISOString()],
  );
  assert.deepEqual(row?.data, { a: [1, 'two', { three: true }] });
  assert.deepEqual([...(row?.raw ?? [])], [0, 1, 254, 255]);
  assert.ok(row?.at instanceof Date);
  assert.equal(row?.at.getTime(), at.getTime());
  assert.equal(row?.missing, null);
});

test('a database error keeps its SQLSTATE and constraint name across the thread', async () => {
  await db.query(`INSERT INTO item (id, name) VALUES (gen_random_uuid(), 'unique-name')`);
  const err = await db.query(`INSERT INTO item (id, name) VALUES (gen_random_uuid(), 'unique-name')`).then(
    () => assert.fail('a duplicate name was accepted'),
    (e: unknown) => e,
  );
  assert.equal(pgErrorCode(err), PG_UNIQUE_VIOLATION);
  assert.equal(pgConstraint(err), 'item_name_key');
  assert.ok(err instanceof Error && /duplicate key/.test(err.message));
});

test('concurrent transactions do not interleave: 20 read-then-write increments all count', async () => {
  await Promise.all(
    Array.from({ length: 20 }, () =>
      db.transaction(async (tx) => {
        const [row] = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
        await new Promise((resolve) => setImmediate(resolve));
        await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [(row?.n ?? 0) + 1]);
      }),
    ),
  );
  const [row] = await db.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
  assert.equal(row?.n, 20);
});

test('a transaction that throws rolls back and the connection is usable afterwards', async () => {
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.query(`INSERT INTO item (id, name) VALUES (gen_random_uuid(), 'rolled-back')`);
      throw new Error('the caller changed its mind');
    }),
    /changed its mind/,
  );
  const rows = await db.query(`SELECT 1 FROM item WHERE name = 'rolled-back'`);
  assert.equal(rows.length, 0);
  const [one] = await db.query<{ one: number }>('SELECT 1 AS one');
  assert.equal(one?.one, 1);
});

test('a failing statement inside a transaction fails the transaction, not the thread', async () => {
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.query(`INSERT INTO item (id, name) VALUES (gen_random_uuid(), 'inside')`);
      await tx.query('SELECT * FROM no_such_table');
    }),
    /no_such_table/,
  );
  assert.equal((await db.query(`SELECT 1 FROM item WHERE name = 'inside'`)).length, 0);
  await db.ping();
});

test('a parameter that cannot cross the thread fails its statement only', async () => {
  await assert.rejects(db.query('SELECT $1::text', [() => 'a function']), /could not be cloned/);
  const [row] = await db.query<{ ok: string }>('SELECT $1::text AS ok', ['still fine']);
  assert.equal(row?.ok, 'still fine');
});

test('a closed database rejects instead of hanging', { timeout: 30_000 }, async () => {
  const other = await createPgliteDb(undefined);
  await other.ping();
  await other.close();
  await assert.rejects(other.query('SELECT 1'), /closed/);
  await assert.rejects(other.ping(), /closed/);
  await other.close(); // idempotent
});
