import type { Db } from '../storage/db.ts';
import { translateWriteError } from '../storage/resources.ts';
import type { AuditRecord } from './audit-event.ts';

/** Where the audit log writes: one call per batch, all or nothing. */
export interface AuditWriter {
  append(records: readonly AuditRecord[]): Promise<void>;
}

/** Each column of `audit_event` (migration 004): its name, the record field it holds, its type. */
const COLUMNS: readonly (readonly [string, keyof AuditRecord, string])[] = [
  ['id', 'id', 'uuid'],
  ['recorded', 'recorded', 'timestamptz'],
  ['project_id', 'projectId', 'uuid'],
  ['action', 'action', 'text'],
  ['outcome', 'outcome', 'smallint'],
  ['reason', 'reason', 'text'],
  ['ip', 'ip', 'text'],
  ['user_id', 'userId', 'uuid'],
  ['client_id', 'clientId', 'uuid'],
  ['login_id', 'loginId', 'uuid'],
];

const INSERT = `INSERT INTO audit_event (${COLUMNS.map(([name]) => name).join(', ')})
  SELECT * FROM unnest(${COLUMNS.map(([, , type], i) => `$${i + 1}::${type}[]`).join(', ')})`;

/**
 * Appends audit records to `audit_event`: one statement per batch, a column per array parameter
 * unpacked by `unnest`, so PostgreSQL parses no JSON and plans the statement once (a prepared
 * statement on the embedded engine). The ids are chosen before the first attempt, so a retried
 * batch that had been committed answers 409 on `id` (the audit log reads that as "already there").
 */
export class AuditStore implements AuditWriter {
  constructor(private readonly db: Db) {}

  async append(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.db.query(
        INSERT,
        COLUMNS.map(([, field]) => records.map((record) => record[field])),
      );
    } catch (err) {
      translateWriteError(err);
    }
  }
}
