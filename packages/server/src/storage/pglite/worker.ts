/**
 * The embedded database's own thread: PGlite (PostgreSQL compiled to WASM) executes every
 * statement synchronously on the thread that owns it, so running it here keeps the server's
 * request thread free for HTTP, JSON and token signing while a statement runs — on a 2-core
 * machine the database and the request pipeline then use both cores.
 *
 * One PGlite, one connection: PGlite's own mutex queues statements, and `transaction()` holds the
 * connection until the server's thread sends `end`, exactly as it did in-process.
 */
import { mkdirSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { type Reply, type Request, type Started, serializeError, type WorkerOptions } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('storage/pglite/worker.ts runs as a worker thread');
const { dataDir, pgliteWasmModule, initdbWasmModule } = workerData as WorkerOptions;

/** Rolls a transaction back without reporting an error (the server's thread asked for it). */
class Rollback extends Error {}

interface OpenTransaction {
  tx: Transaction;
  /** Lets PGlite's transaction() finish: COMMIT when `commit`, else ROLLBACK. */
  end(commit: boolean): void;
  /** Settles once COMMIT or ROLLBACK has run: with the error COMMIT failed with, if any. */
  settled: Promise<unknown>;
}

async function open(): Promise<PGlite> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  // PGlite's WASM heap dominates the process's memory: 16 MB of shared buffers (instead of 128 MB)
  // takes a reopened embedded server from ~365 MB to ~245 MB RSS; the OS page cache still caches files.
  //
  // relaxedDurability only stops PGlite from awaiting its `syncToFs` step after each query. On Node
  // the data directory is mounted with NODEFS, where that step is a no-op (the WAL and data files
  // are written through to the directory by PostgreSQL itself), so durability is unchanged — the
  // kill -9 recovery test (test/reliability/crash-recovery.test.ts) holds it to that — and every
  // statement saves a mutex round trip (~30 % of a simple query's cost).
  return PGlite.create(dataDir, {
    postgresqlconf: ['shared_buffers = 16MB'],
    relaxedDurability: dataDir !== undefined,
    pgliteWasmModule,
    initdbWasmModule,
  });
}

function serve(db: PGlite): void {
  const transactions = new Map<number, OpenTransaction>();
  const reply = (message: Reply) => port?.postMessage(message);
  const fail = (id: number, err: unknown) => reply({ id, error: serializeError(err) });
  const target = (tx: number | undefined) => {
    if (tx === undefined) return db;
    const transaction = transactions.get(tx);
    if (!transaction) throw new Error(`transaction ${tx} is not open`);
    return transaction.tx;
  };
  const answer = (id: number, work: () => Promise<unknown[] | undefined>) => {
    let pending: Promise<unknown[] | undefined>;
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

  const begin = (id: number, txId: number) => {
    let started = false;
    const settled = db
      .transaction(
        (tx) =>
          new Promise<void>((resolve, reject) => {
            started = true;
            transactions.set(txId, {
              tx,
              end: (commit) => (commit ? resolve() : reject(new Rollback())),
              settled,
            });
            reply({ id });
          }),
      )
      .then(
        () => undefined,
        (err: unknown) => (err instanceof Rollback ? undefined : err),
      )
      .then((err) => {
        transactions.delete(txId);
        // BEGIN itself failed: the callback never ran, so the `begin` request gets the error.
        if (!started) fail(id, err ?? new Error('could not begin a transaction'));
        return err;
      });
  };

  port?.on('message', (message: Request) => {
    switch (message.kind) {
      case 'query':
        answer(message.id, async () => {
          const result = await target(message.tx).query(message.sql, message.params as unknown[] | undefined);
          return result.rows;
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
  (db) => {
    serve(db);
    port.postMessage({ ready: true } satisfies Started);
  },
  (err) => port.postMessage({ ready: false, error: serializeError(err) } satisfies Started),
);
