import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable } from './db.ts';

/**
 * The embedded engine: real PostgreSQL compiled to WASM, persisted under `dataDir`
 * (or in memory when `dataDir` is undefined, for tests). PGlite is single-connection:
 * it queues statements, and `transaction()` holds the connection exclusively.
 */
export async function createPgliteDb(dataDir: string | undefined): Promise<Db> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  // PGlite's WASM heap dominates the process's memory: 16 MB of shared buffers (instead of 128 MB)
  // takes a reopened embedded server from ~365 MB to ~245 MB RSS; the OS page cache still caches files.
  //
  // relaxedDurability only stops PGlite from awaiting its `syncToFs` step after each query. On Node
  // the data directory is mounted with NODEFS, where that step is a no-op (the WAL and data files
  // are written through to the directory by PostgreSQL itself), so durability is unchanged — the
  // kill -9 recovery test (test/reliability/crash-recovery.test.ts) holds it to that — and every
  // statement saves a mutex round trip (~30 % of a simple query's cost).
  const db = await PGlite.create(dataDir, {
    postgresqlconf: ['shared_buffers = 16MB'],
    relaxedDurability: dataDir !== undefined,
  });

  const run = async <T>(target: Pick<PGlite, 'query'>, sql: string, params?: readonly unknown[]) => {
    const result = await target.query<T>(sql, params as unknown[] | undefined);
    return result.rows;
  };

  return {
    engine: 'pglite',
    query: (sql, params) => run(db, sql, params),
    async exec(sql) {
      await db.exec(sql);
    },
    transaction(fn) {
      return db.transaction(async (t) => {
        const tx: Queryable = {
          query: (sql, params) => run(t, sql, params),
          async exec(sql) {
            await t.exec(sql);
          },
        };
        return fn(tx);
      });
    },
    async ping() {
      await db.query('SELECT 1');
    },
    async close() {
      if (!db.closed) await db.close();
    },
  };
}
