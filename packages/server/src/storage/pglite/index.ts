import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { workerResourceLimits } from '../../services/worker-heap.ts';
import type { Db, Queryable } from '../db.ts';
import { deserializeError, type Reply, type Request, type Started, type WorkerOptions } from './protocol.ts';

/** Distributes Omit over the request union, so each kind keeps its own fields. */
type Outgoing = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

function startWorker(workerData: WorkerOptions): Worker {
  return new Worker(new URL('./worker.js', import.meta.url), {
    workerData,
    // What the thread allocates per statement (the message, PGlite's result buffers and rows) dies
    // before the next one: a 4 MB new space (2 MB semi-spaces) serves it, where V8's would grow
    // to 16 MB under load. No old-generation limit: the engine's own heap is WASM memory, not V8's.
    resourceLimits: workerResourceLimits({ maxYoungGenerationSizeMb: 6 }),
  });
}

/** Resolves when the thread's database is open; rejects (and stops the thread) when it cannot open. */
function started(worker: Worker): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    const onExit = (code: number) => reject(new Error(`the embedded database thread exited (code ${code})`));
    worker.once('error', onError);
    worker.once('exit', onExit);
    worker.once('message', (message: Started) => {
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (message.ready) resolve();
      else {
        reject(deserializeError(message.error));
        void worker.terminate();
      }
    });
  });
}

let compiled: Promise<Pick<WorkerOptions, 'pgliteWasmModule' | 'initdbWasmModule'>> | undefined;

/**
 * PGlite's two WASM binaries (~9 MB), compiled once per process and shared with every database
 * thread (a compiled module crosses to a worker without recompiling): without this, each start
 * recompiles them (~1.8 s), which a process opening several databases (the tests) pays every time.
 *
 * V8 compiles WASM (and later re-compiles its hot functions with TurboFan) on as many background
 * tasks as it likes (up to 128). Each thread that compiles leaves a glibc malloc arena behind that
 * keeps its peak: with one task an idle embedded server holds ~55 MB less (≈300 → ≈245 MB RSS) and
 * starts as fast on this 2-core class of machine. The flag is read when a compile job starts, so
 * setting it here, before the first compile, is enough; it concerns WebAssembly only. What the one
 * thread's TurboFan jobs still leave pinned in its arena (~25 MB), `npm start`'s
 * `MALLOC_MMAP_THRESHOLD_` returns (test/storage/pglite-malloc.test.ts).
 */
function compiledWasm(): Promise<Pick<WorkerOptions, 'pgliteWasmModule' | 'initdbWasmModule'>> {
  compiled ??= (async () => {
    setFlagsFromString('--wasm-num-compilation-tasks=1');
    const dist = new URL('.', import.meta.resolve('@electric-sql/pglite'));
    const [pglite, initdb] = await Promise.all(
      ['pglite.wasm', 'initdb.wasm'].map(async (file) =>
        WebAssembly.compile(await readFile(new URL(file, dist))),
      ),
    );
    return { pgliteWasmModule: pglite, initdbWasmModule: initdb };
  })();
  compiled.catch(() => {
    compiled = undefined;
  });
  return compiled;
}

/**
 * The embedded engine: real PostgreSQL compiled to WASM, persisted under `dataDir` (or in memory
 * when `dataDir` is undefined, for tests). It runs on its own worker thread (`./worker.js`), so
 * the server's request thread never executes a statement itself; this side sends each statement
 * there and awaits its rows. PGlite is single-connection: statements queue, and a transaction
 * holds the connection until `fn` settles, exactly as with the engine in-process.
 */
export async function createPgliteDb(dataDir: string | undefined): Promise<Db> {
  const wasm = await compiledWasm();
  // initdb grows a WASM heap of its own (~500 MB resident) that the engine then keeps: a new data
  // directory is therefore initialised in a thread that exits afterwards, which returns that memory.
  if (dataDir && !existsSync(join(dataDir, 'PG_VERSION'))) {
    const init = startWorker({ dataDir, ...wasm, initOnly: true });
    try {
      await started(init);
    } finally {
      await init.terminate();
    }
  }
  const worker = startWorker({ dataDir, ...wasm });
  const pending = new Map<number, { resolve(rows: unknown[]): void; reject(err: Error): void }>();
  let nextId = 1;
  let nextTx = 1;
  let stopped: Error | undefined;

  const stop = (why: Error) => {
    stopped ??= why;
    for (const { reject } of pending.values()) reject(why);
    pending.clear();
  };

  await started(worker);

  worker.unref();
  worker.on('message', (reply: Reply) => {
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if ('error' in reply) waiter.reject(deserializeError(reply.error));
    else waiter.resolve(reply.rows ?? []);
  });
  worker.on('error', (err) => stop(new Error(`the embedded database failed: ${err.message}`)));
  worker.on('exit', () => stop(new Error('the embedded database is closed')));

  const send = (message: Outgoing): Promise<unknown[]> => {
    if (stopped) return Promise.reject(stopped);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      // The thread keeps the process alive only while a statement is in flight: an idle database
      // never holds a finished script (or a test) open, and an awaited statement always completes.
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
      try {
        worker.postMessage({ ...message, id });
      } catch (err) {
        // A parameter that cannot be cloned (DataCloneError): this statement fails, nothing else.
        pending.delete(id);
        if (pending.size === 0) worker.unref();
        reject(err);
      }
    });
  };

  const queryable = (tx?: number): Queryable => ({
    query: async <T>(sql: string, params?: readonly unknown[]) =>
      (await send({ kind: 'query', sql, params, tx })) as T[],
    async exec(sql) {
      await send({ kind: 'exec', sql, tx });
    },
  });

  return {
    engine: 'pglite',
    ...queryable(),
    async transaction(fn) {
      const tx = nextTx++;
      await send({ kind: 'begin', tx });
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(queryable(tx));
      } catch (err) {
        await send({ kind: 'end', tx, commit: false }).catch(() => {});
        throw err;
      }
      await send({ kind: 'end', tx, commit: true });
      return result;
    },
    async ping() {
      await send({ kind: 'query', sql: 'SELECT 1' });
    },
    async close() {
      if (stopped) return;
      try {
        await send({ kind: 'close' });
      } finally {
        stop(new Error('the embedded database is closed'));
        await worker.terminate();
      }
    },
  };
}
