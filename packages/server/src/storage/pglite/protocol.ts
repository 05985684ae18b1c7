/**
 * The messages between the server's thread and the thread that runs the embedded database
 * (`./worker.ts`). Values cross by structured clone, so rows keep their Dates, Uint8Arrays and
 * parsed JSON; errors cross as plain fields and are rebuilt with the fields the repositories read
 * (`code` = SQLSTATE, `constraint`, …; see `../db.ts`).
 */

export type Request =
  | { id: number; kind: 'query'; sql: string; params?: readonly unknown[]; tx?: number }
  | { id: number; kind: 'exec'; sql: string; tx?: number }
  /** Opens transaction `tx`; answered once it holds the connection. */
  | { id: number; kind: 'begin'; tx: number }
  /** Commits (or rolls back) transaction `tx`; answered once it has ended. */
  | { id: number; kind: 'end'; tx: number; commit: boolean }
  | { id: number; kind: 'close' };

export type Reply = { id: number; rows?: unknown[] } | { id: number; error: SerializedError };

/** The start-up message: ready, or why the database could not open. */
export type Started = { ready: true } | { ready: false; error: SerializedError };

export interface WorkerOptions {
  dataDir: string | undefined;
  /** Compiled once per process by the server's thread (see `./index.ts`). */
  pgliteWasmModule?: WebAssembly.Module;
  initdbWasmModule?: WebAssembly.Module;
}

export interface SerializedError {
  message: string;
  name?: string;
  fields: Record<string, string | number>;
}

/** PostgreSQL error fields worth keeping (node-postgres and PGlite use the same names). */
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
] as const;

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  const fields: Record<string, string | number> = {};
  for (const key of ERROR_FIELDS) {
    const value = (err as unknown as Record<string, unknown>)[key];
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return { message: err.message, name: err.name, fields };
}

export function deserializeError(serialized: SerializedError): Error {
  const err = new Error(serialized.message);
  if (serialized.name) err.name = serialized.name;
  return Object.assign(err, serialized.fields);
}
