// @ts-check
/**
 * The embedded database's own thread: PGlite (PostgreSQL compiled to WASM) executes every
 * statement synchronously on the thread that owns it, so running it here keeps the server's
 * request thread free for HTTP, JSON and token signing while a statement runs — on a 2-core
 * machine the database and the request pipeline then use both cores.
 *
 * One PGlite, one connection: PGlite's own mutex queues statements, and `transaction()` holds the
 * connection until the server's thread sends `end`, exactly as it did in-process.
 *
 * Plain JavaScript (type-checked through JSDoc): a TypeScript loader in this thread would cost a
 * second module-loader isolate, ~65 MB of resident memory, for one small file.
 */
import { mkdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PreparedStatements } from './prepared.js';

/** @typedef {import('@electric-sql/pglite').Transaction} Transaction */
/** @typedef {import('./protocol.ts').Request} Request */
/** @typedef {import('./protocol.ts').Reply} Reply */
/** @typedef {import('./protocol.ts').Started} Started */
/** @typedef {import('./protocol.ts').SerializedError} SerializedError */
/** @typedef {import('./protocol.ts').WorkerOptions} WorkerOptions */

/**
 * @typedef {object} OpenTransaction
 * @property {Transaction} tx
 * @property {(commit: boolean) => void} end Lets PGlite's transaction() finish: COMMIT when `commit`, else ROLLBACK.
 * @property {Promise<unknown>} settled Settles once COMMIT or ROLLBACK has run, with COMMIT's error if any.
 */

if (!parentPort) throw new Error('storage/pglite/worker.js runs as a worker thread');
const port = parentPort;
const { dataDir, pgliteWasmModule, initdbWasmModule, initOnly } = /** @type {WorkerOptions} */ (workerData);

/** PostgreSQL error fields the repositories read (node-postgres and PGlite use the same names). */
const ERROR_FIELDS = [
  'code',
  'severity',
  'detail',
  'hint',
  'position',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'routine',
];

/**
 * @param {unknown} err
 * @returns {SerializedError}
 */
function serializeError(err) {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  /** @type {Record<string, string | number>} */
  const fields = {};
  for (const key of ERROR_FIELDS) {
    const value = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (err))[key];
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { message: err.message, name: err.name, fields };
}

/** Rolls a transaction back without reporting an error (the server's thread asked for it). */
class Rollback extends Error {}

/** @returns {Promise<PGlite>} */
async function open() {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  // PGlite's WASM heap dominates the process's memory, and what it touches it keeps: 16 MB of shared
  // buffers (instead of 128 MB) took a reopened embedded server from ~365 MB to ~245 MB RSS, 8 MB took
  // another ~7 MB off the peaks under load with no more CPU per statement (docs/performance.md). The
  // OS page cache still caches the files; the embedded engine serves one machine's working set.
  // For the same reason ANALYZE (./maintenance.ts runs it) samples 3,000 rows per table, not 30,000:
  // the larger sample grew the heap by ~17 MB for good, the smaller one by ~0 (and ANALYZE of 300k
  // rows took 0.4 s instead of 1.2 s); ten most-common values and histogram buckets per column are
  // plenty for this schema's lookups by key, digest and type.
  //
  // relaxedDurability only stops PGlite from awaiting its `syncToFs` step after each query. On Node
  // the data directory is mounted with NODEFS, where that step is a no-op (the WAL and data files
  // are written through to the directory by PostgreSQL itself), so durability is unchanged — the
  // kill -9 recovery test (test/reliability/crash-recovery.test.ts) holds it to that — and every
  // statement saves a mutex round trip (~30 % of a simple query's cost).
  return PGlite.create(dataDir, {
    postgresqlconf: ['shared_buffers = 8MB', 'default_statistics_target = 10'],
    relaxedDurability: dataDir !== undefined,
    pgliteWasmModule,
    initdbWasmModule,
  });
}

/** @param {PGlite} db */
function serve(db) {
  /** @type {Map<number, OpenTransaction>} */
  const transactions = new Map();
  // Parameterised statements as named prepared statements (./prepared.js): ~3× less engine time each.
  const prepared = PreparedStatements.supported(db) ? new PreparedStatements(db) : undefined;
  /** @param {Reply} message */
  const reply = (message) => port.postMessage(message);
  /** @param {number} id @param {unknown} err */
  const fail = (id, err) => reply({ id, error: serializeError(err) });
  /** @param {number | undefined} tx */
  const target = (tx) => {
    if (tx === undefined) return db;
    const transaction = transactions.get(tx);
    if (!transaction) throw new Error(`transaction ${tx} is not open`);
    return transaction.tx;
  };
  /** @param {number} id @param {() => Promise<unknown[] | undefined>} work */
  const answer = (id, work) => {
    /** @type {Promise<unknown[] | undefined>} */
    let pending;
    try {
      pending = work();
    } catch (err) {
      fail(id, err);
      return;
    }
    pending.then(
      (rows) => reply(rows ? { id, rows } : { id }),
      (err) => fail(id, err),
    );
  };

  /** @param {number} id @param {number} txId */
  const begin = (id, txId) => {
    let started = false;
    /** @type {Promise<unknown>} */
    const settled = db
      .transaction(
        (tx) =>
          new Promise((resolve, reject) => {
            started = true;
            transactions.set(txId, {
              tx,
              end: (commit) => (commit ? resolve(undefined) : reject(new Rollback())),
              settled,
            });
            reply({ id });
          }),
      )
      .then(
        () => undefined,
        (err) => (err instanceof Rollback ? undefined : err),
      )
      .then((err) => {
        transactions.delete(txId);
        // BEGIN itself failed: the callback never ran, so the `begin` request gets the error.
        if (!started) fail(id, err ?? new Error('could not begin a transaction'));
        return err;
      });
  };

  port.on('message', (/** @type {Request} */ message) => {
    switch (message.kind) {
      case 'query':
        answer(message.id, async () => {
          const params = /** @type {unknown[] | undefined} */ (message.params) ?? [];
          const queryable = target(message.tx); // throws when the transaction is not open
          if (prepared) return prepared.query(message.sql, params, message.tx !== undefined);
          return (await queryable.query(message.sql, params)).rows;
        });
        return;
      case 'exec':
        answer(message.id, async () => {
          await target(message.tx).exec(message.sql);
          return undefined;
        });
        return;
      case 'begin':
        begin(message.id, message.tx);
        return;
      case 'end':
        answer(message.id, async () => {
          const transaction = transactions.get(message.tx);
          if (!transaction) throw new Error(`transaction ${message.tx} is not open`);
          transaction.end(message.commit);
          const err = await transaction.settled;
          if (err) throw err;
          return undefined;
        });
        return;
      case 'close':
        answer(message.id, async () => {
          await db.close();
          return undefined;
        });
        return;
    }
  });
}

open().then(
  async (db) => {
    if (initOnly) await db.close();
    else serve(db);
    port.postMessage(/** @type {Started} */ ({ ready: true }));
  },
  (err) => port.postMessage(/** @type {Started} */ ({ ready: false, error: serializeError(err) })),
);
