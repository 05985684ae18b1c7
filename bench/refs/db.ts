/**
 * The database of a ceiling server, on the same engine as the server under test: PostgreSQL when
 * BENCH_DATABASE_URL is set, otherwise PGlite in BENCH_PGLITE_DIR (or a temp dir of its own).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Db {
  engine: 'pglite' | 'postgres';
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs several `;`-separated statements without parameters. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

export async function openDb(): Promise<Db> {
  const url = process.env.BENCH_DATABASE_URL;
  if (url) {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: url, max: Number(process.env.BENCH_PG_POOL ?? 10) });
    await pool.query('SELECT 1');
    return {
      engine: 'postgres',
      query: async <T>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as T[],
      exec: async (sql) => {
        await pool.query(sql);
      },
      close: () => pool.end(),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let dir = process.env.BENCH_PGLITE_DIR;
  // A dir of our own, or a throw-away one the runner made (removed here too, should the runner die first).
  let own = false;
  if (!dir) dir = mkdtempSync(path.join(tmpdir(), 'fedhir-bench-pglite-'));
  if (path.basename(dir).startsWith('fedhir-bench-')) {
    own = true;
    const d = dir;
    process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  }
  const db = await PGlite.create(dir);
  return {
    engine: 'pglite',
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
    exec: async (sql) => {
      await db.exec(sql);
    },
    close: async () => {
      await db.close();
      if (own) rmSync(dir!, { recursive: true, force: true });
    },
  };
}
