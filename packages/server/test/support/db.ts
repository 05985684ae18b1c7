import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../src/storage/db.ts';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';
import { createPostgresDb } from '../../src/storage/postgres.ts';

export type Engine = 'pglite' | 'postgres';

/** Every storage test runs on PGlite always, and on PostgreSQL when TEST_DATABASE_URL is set. */
export const ENGINES: readonly Engine[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase {
  db: Db;
  /** The connection string of the throwaway PostgreSQL database (postgres engine only). */
  url: string | undefined;
  /** Closes the connection and drops the throwaway database. */
  drop(): Promise<void>;
}

/** A fresh, empty throwaway PostgreSQL database; answers its URL and a function that drops it. */
export async function createThrowawayPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `fedhir_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function createTestDatabase(engine: Engine): Promise<TestDatabase> {
  if (engine === 'pglite') {
    const db = await createPgliteDb(undefined);
    return { db, url: undefined, drop: () => db.close() };
  }
  const { url, drop } = await createThrowawayPostgres();
  const db = createPostgresDb(url, { max: 10 });
  return {
    db,
    url,
    async drop() {
      await db.close();
      await drop();
    },
  };
}
