import pg from 'pg';
import { type Db, pgErrorCode, type Queryable } from './db.ts';

/**
 * Most distinct statements a process names, so what a connection holds prepared — plus one per
 * rename after SQLSTATE 0A000 (the old name stays prepared on connections that had it; renames
 * follow migrations only). The embedded engine keeps the same number (pglite/prepared.js), with
 * eviction, which `pg` cannot do: it has no way to forget a statement it prepared.
 */
export const MAX_PREPARED_STATEMENTS = 256;

/**
 * Names for statements, so `pg` sends each as a named prepared statement: parsed and planned once per
 * connection, then only bound and executed (PostgreSQL, "PREPARE"). Unnamed, PostgreSQL parses and
 * plans every statement on every request; on the benchmark's two cores, shared with the server,
 * naming them served 1.32× the bearer-protected FHIR reads (docs/performance.md, 2026-12-06 III).
 *
 * Bounded: the first {@link MAX_PREPARED_STATEMENTS} distinct texts get names and keep them; later
 * ones run unnamed. A prepared statement lives as long as its connection, so without the bound
 * statements built per request (FHIR search) would grow every connection's memory on the server.
 */
class StatementNames {
  private readonly names = new Map<string, string>();
  private issued = 0;

  nameOf(sql: string): string | undefined {
    const name = this.names.get(sql);
    if (name !== undefined || this.names.size >= MAX_PREPARED_STATEMENTS) return name;
    return this.rename(sql);
  }

  /** A fresh name: each connection prepares the text again under it. */
  rename(sql: string): string {
    const name = `fedhir_${this.issued++}`;
    this.names.set(sql, name);
    return name;
  }
}

/**
 * SQLSTATE 0A000 "cached plan must not change result type": a prepared statement whose result
 * columns changed since it was prepared (another instance's migration altered a table it reads).
 */
const STALE_PLAN = '0A000';

export interface PostgresOptions {
  /** Most connections of this instance. Default 20. */
  max?: number;
  /**
   * Named prepared statements (default true). Off behind a pooler that moves one client's statements
   * across server connections, where a statement prepared on one is missing on the next (PgBouncer in
   * transaction mode without `max_prepared_statements`).
   */
  preparedStatements?: boolean;
}

/** A `pg` pool. Sizing: every instance keeps at most `max` connections; see docs/deployment.md. */
export function createPostgresDb(connectionString: string, options: PostgresOptions = {}): Db {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 20,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 5_000,
    // A statement that runs this long is a fault, not a workload: answer 503 instead of hanging.
    statement_timeout: 15_000,
    application_name: 'fedhir',
  });
  // An idle client that loses its connection (PostgreSQL restart) must not crash the process.
  pool.on('error', () => {});

  const names = options.preparedStatements === false ? undefined : new StatementNames();
  const run = async <T>(client: pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]) => {
    const values = params as unknown[] | undefined;
    // Statements without parameters go as simple queries (they may hold several statements).
    const name = values && values.length > 0 ? names?.nameOf(sql) : undefined;
    if (name === undefined) return (await client.query(sql, values)).rows as T[];
    try {
      return (await client.query({ name, text: sql, values })).rows as T[];
    } catch (err) {
      if (pgErrorCode(err) !== STALE_PLAN || !names) throw err;
      // Prepared again under a new name on every connection. Outside a transaction the statement is
      // retried at once; inside one the transaction is already aborted and fails as a whole.
      const fresh = names.rename(sql);
      if (client instanceof pg.Pool)
        return (await client.query({ name: fresh, text: sql, values })).rows as T[];
      throw err;
    }
  };

  return {
    engine: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    async exec(sql) {
      await pool.query(sql);
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: (sql, params) => run(client, sql, params),
          async exec(sql) {
            await client.query(sql);
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      if (!pool.ended) await pool.end();
    },
  };
}
