/**
 * The one database interface the repositories use. PostgreSQL (`pg`) and the embedded PGlite engine
 * both implement it and run the same SQL: one dialect for the laptop and the cluster.
 */
export interface Queryable {
  /** Runs one statement with positional parameters (`$1`, `$2`, …) and answers its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly engine: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction; it commits when `fn` resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Cheap liveness probe for /healthcheck; rejects when the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL error codes the repositories translate into client errors. */
export const PG_UNIQUE_VIOLATION = '23505';

export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

export function pgConstraint(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'constraint' in err && typeof err.constraint === 'string') {
    return err.constraint;
  }
  return undefined;
}
