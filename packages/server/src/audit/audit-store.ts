import type { Db } from '../storage/db.ts';
import { translateWriteError } from '../storage/resources.ts';
import type { AuditRecord } from './audit-event.ts';

/** Where the audit log writes: one call per batch, all or nothing. */
export interface AuditWriter {
  append(records: readonly AuditRecord[]): Promise<void>;
}

type Column = readonly [name: string, field: keyof AuditRecord, type: string];

/** Columns of `audit_event` (migration 004) that every event has a value of its own for. */
const OWN: readonly Column[] = [
  ['id', 'id', 'uuid'],
  ['recorded', 'recorded', 'timestamptz'],
];

/**
 * Columns that a whole batch often shares: under load most events of a batch are the same action
 * by the same client for the same project (every client_credentials token of one client is).
 */
const SHAREABLE: readonly Column[] = [
  ['project_id', 'projectId', 'uuid'],
  ['action', 'action', 'text'],
  ['outcome', 'outcome', 'smallint'],
  ['reason', 'reason', 'text'],
  ['ip', 'ip', 'text'],
  ['user_id', 'userId', 'uuid'],
  ['client_id', 'clientId', 'uuid'],
  ['login_id', 'loginId', 'uuid'],
];

const COLUMNS = [...OWN, ...SHAREABLE];

/**
 * One statement for any batch: an array parameter per column ($1…$10), unpacked by a
 * multi-argument `unnest`, then one scalar parameter per shareable column ($11…$18). A column with
 * one value for the whole batch travels as an empty array plus that value once: `unnest` pads the
 * shorter arrays with NULLs (PostgreSQL, "Array Functions and Operators"), and COALESCE puts the
 * batch's value there. A column whose values differ travels as an array with a NULL scalar, so
 * COALESCE keeps each row's own value, NULLs included.
 */
const INSERT = `INSERT INTO audit_event (${COLUMNS.map(([name]) => name).join(', ')})
  SELECT ${OWN.map(([name]) => `e.${name}`).join(', ')},
    ${SHAREABLE.map(([name, , type], i) => `COALESCE(e.${name}, $${COLUMNS.length + i + 1}::${type})`).join(', ')}
  FROM unnest(${COLUMNS.map(([, , type], i) => `$${i + 1}::${type}[]`).join(', ')})
    AS e(${COLUMNS.map(([name]) => name).join(', ')})`;

/** The parameters of {@link INSERT} for a non-empty batch. */
export function insertParameters(records: readonly AuditRecord[]): unknown[] {
  const arrays: unknown[][] = OWN.map(([, field]) => records.map((record) => record[field]));
  const shared: unknown[] = [];
  for (const [, field] of SHAREABLE) {
    const first = records[0]?.[field] ?? null;
    if (records.every((record) => record[field] === first)) {
      arrays.push([]);
      shared.push(first);
    } else {
      arrays.push(records.map((record) => record[field]));
      shared.push(null);
    }
  }
  return [...arrays, ...shared];
}

/**
 * Appends audit records to `audit_event`: one statement per batch, so PostgreSQL parses no JSON and
 * plans the statement once (a prepared statement on the embedded engine). Values a batch shares are
 * sent and parsed once ({@link INSERT}): on the embedded engine a batch of one client's tokens then
 * cost ~30 % less per row (docs/performance.md, 2026-12-06 II). The ids are chosen before the first
 * attempt, so a retried batch that had been committed answers 409 on `id` (the audit log reads that
 * as "already there").
 */
export class AuditStore implements AuditWriter {
  constructor(private readonly db: Db) {}

  async append(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.db.query(INSERT, insertParameters(records));
    } catch (err) {
      translateWriteError(err);
    }
  }
}
