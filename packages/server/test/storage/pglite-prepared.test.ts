/**
 * Parameterised statements on the embedded engine run as named prepared statements
 * (src/storage/pglite/prepared.js). They must answer exactly as PGlite's own query() does — same
 * rows, same types, same errors — stay bounded, survive a table whose shape changes under them, and
 * never run inside another caller's open transaction. These tests drive a real in-memory PGlite in
 * this thread, and compare with its own query() where the answer matters.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { PG_UNIQUE_VIOLATION, pgErrorCode } from '../../src/storage/db.ts';
import { PreparedStatements } from '../../src/storage/pglite/prepared.js';

let db: PGlite;
before(async () => {
  db = await PGlite.create();
  await db.exec(`CREATE TABLE item (id int PRIMARY KEY, name text UNIQUE, data jsonb, raw bytea, at timestamptz,
      tags text[]);
    INSERT INTO item VALUES (1, 'one', '{"a":[1,"x"]}', '\\x00ff', '2026-01-02T03:04:05.678Z', '{a,b}');`);
});
after(() => db.close());

test('this PGlite offers what the fast path needs (else the worker would silently use query())', () => {
  assert.equal(PreparedStatements.supported(db), true);
});

test('rows and parameter types match PGlite query(): jsonb, bytea, timestamptz, arrays, NULL', async () => {
  const statements = new PreparedStatements(db);
  const sql = `SELECT id, name, data, raw, at, tags, $2::jsonb AS echo, $3::text[] AS list, $4::int AS nothing
    FROM item WHERE id = $1`;
  const params = [1, JSON.stringify({ b: true }), ['p', 'q'], null];
  const fast = await statements.query(sql, params, false);
  const reference = (await db.query(sql, params)).rows;
  assert.deepEqual(fast, reference);
  const [row] = fast as { data: unknown; raw: Uint8Array; at: Date; tags: string[]; list: string[] }[];
  assert.deepEqual(row?.data, { a: [1, 'x'] });
  assert.deepEqual([...(row?.raw ?? [])], [0, 255]);
  assert.ok(row?.at instanceof Date);
  assert.deepEqual(row?.list, ['p', 'q']);
});

test('a statement is prepared once and reused with new parameters', async () => {
  const statements = new PreparedStatements(db);
  const sql = 'SELECT $1::int + 1 AS n';
  for (let i = 0; i < 5; i++) assert.deepEqual(await statements.query(sql, [i], false), [{ n: i + 1 }]);
  assert.equal(statements.size, 1);
  const [count] = (
    await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1`,
      [sql],
    )
  ).rows;
  assert.equal(count?.n, 1, 'PostgreSQL holds exactly one prepared statement for five executions');
});

test('the bound holds: the least recently used statement is closed, and still runs when asked again', async () => {
  const statements = new PreparedStatements(db, 2);
  const sqls = ['SELECT 1 AS n', 'SELECT 2 AS n', 'SELECT 3 AS n'];
  for (const sql of sqls) await statements.query(sql, [], false);
  assert.equal(statements.size, 2);
  const names = (await db.query<{ statement: string }>(`SELECT statement FROM pg_prepared_statements`)).rows;
  assert.ok(
    !names.some((r) => r.statement === 'SELECT 1 AS n'),
    'the evicted statement was closed in PostgreSQL',
  );
  assert.deepEqual(await statements.query('SELECT 1 AS n', [], false), [{ n: 1 }]);
  assert.equal(statements.size, 2);
});

test('errors keep their SQLSTATE; a statement PostgreSQL refuses is not remembered', async () => {
  const statements = new PreparedStatements(db);
  const duplicate = await statements.query(`INSERT INTO item (id, name) VALUES ($1, 'one')`, [2], false).then(
    () => assert.fail('a duplicate name was accepted'),
    (e: unknown) => e,
  );
  assert.equal(pgErrorCode(duplicate), PG_UNIQUE_VIOLATION);
  const syntax = await statements.query('SELEC nonsense', [], false).then(
    () => assert.fail('a syntax error was accepted'),
    (e: unknown) => e,
  );
  assert.equal(pgErrorCode(syntax), '42601');
  assert.equal(statements.size, 1, 'only the INSERT (which parsed) is held');
  assert.deepEqual(
    await statements.query('SELECT 1 AS ok', [], false),
    [{ ok: 1 }],
    'the connection is usable',
  );
});

test('a table whose row shape changes under a prepared SELECT * is re-prepared, not an error', async () => {
  const statements = new PreparedStatements(db);
  await db.exec('CREATE TABLE shape (id int PRIMARY KEY); INSERT INTO shape VALUES (1)');
  const sql = 'SELECT * FROM shape WHERE id = $1';
  assert.deepEqual(await statements.query(sql, [1], false), [{ id: 1 }]);
  await db.exec(`ALTER TABLE shape ADD COLUMN label text DEFAULT 'new'`);
  assert.deepEqual(await statements.query(sql, [1], false), [{ id: 1, label: 'new' }]);
});

test('outside a transaction it waits for an open transaction to finish instead of running inside it', async () => {
  const statements = new PreparedStatements(db);
  await db.exec('CREATE TABLE tx_probe (n int)');
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => {
    entered = resolve;
  });
  const transaction = db.transaction(async (tx) => {
    await tx.query('INSERT INTO tx_probe VALUES (1)');
    entered();
    await held;
    await tx.rollback();
  });
  await inside;
  const outside = statements.query('SELECT count(*)::int AS n FROM tx_probe', [], false);
  // Had it run inside the open transaction it would see the uncommitted row (n = 1).
  release();
  await transaction;
  assert.deepEqual(await outside, [{ n: 0 }]);
});

test('inside a transaction it runs on the transaction, and an error fails that transaction', async () => {
  const statements = new PreparedStatements(db);
  await db.exec('CREATE TABLE tx_items (id int PRIMARY KEY)');
  const failed = await db
    .transaction(async () => {
      await statements.query('INSERT INTO tx_items VALUES ($1)', [1], true);
      await statements.query('INSERT INTO tx_items VALUES ($1)', [1], true);
    })
    .then(
      () => assert.fail('the duplicate key did not fail the transaction'),
      (e: unknown) => e,
    );
  assert.equal(pgErrorCode(failed), PG_UNIQUE_VIOLATION);
  assert.deepEqual(await statements.query('SELECT count(*)::int AS n FROM tx_items', [], false), [{ n: 0 }]);
});
