/**
 * The messages between the server's thread and the thread that runs the embedded database
 * (`./worker.js`). Values cross by structured clone, so rows keep their Dates, Uint8Arrays and
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
  /** Create the data directory's cluster (initdb), close it and report ready: see `./index.ts`. */
  initOnly?: boolean;
}

export interface SerializedError {
  message: string;
  name?: string;
  fields: Record<string, string | number>;
}

export function deserializeError(serialized: SerializedError): Error {
  const err = new Error(serialized.message);
  if (serialized.name) err.name = serialized.name;
  return Object.assign(err, serialized.fields);
}
