import { Conflict } from '../errors/http-errors.ts';
import { type Db, PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode } from '../storage/db.ts';
import type { AuditRecord } from './audit-event.ts';

/** Where the audit log writes: one call per batch, all or nothing. */
export interface AuditWriter {
  append(records: readonly AuditRecord[]): Promise<void>;
}

/**
 * Appends audit records to `audit_event` (migration 004): one statement per batch, its columns as
 * ten array parameters unpacked by `unnest`, so PostgreSQL parses no JSON and plans the statement
 * once (a prepared statement on the embedded engine).
 */
export class AuditStore implements AuditWriter {
  constructor(private readonly db: Db) {}

  async append(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const n = records.length;
    const columns = {
      id: new Array<string>(n),
      recorded: new Array<string>(n),
      project: new Array<string | null>(n),
      action: new Array<string>(n),
      outcome: new Array<number>(n),
      reason: new Array<string | null>(n),
      ip: new Array<string | null>(n),
      user: new Array<string | null>(n),
      client: new Array<string | null>(n),
      login: new Array<string | null>(n),
    };
    for (let i = 0; i < n; i++) {
      const r = records[i] as AuditRecord;
      columns.id[i] = r.id;
      columns.recorded[i] = r.recorded;
      columns.project[i] = r.projectId;
      columns.action[i] = r.action;
      columns.outcome[i] = r.outcome;
      columns.reason[i] = r.reason;
      columns.ip[i] = r.ip;
      columns.user[i] = r.userId;
      columns.client[i] = r.clientId;
      columns.login[i] = r.loginId;
    }
    try {
      await this.db.query(
        `INSERT INTO audit_event (id, recorded, project_id, action, outcome, reason, ip, user_id, client_id, login_id)
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::smallint[], $6::text[],
           $7::text[], $8::uuid[], $9::uuid[], $10::uuid[])`,
        Object.values(columns),
      );
    } catch (err) {
      // The id is chosen before the first attempt: "already there" tells the audit log that a batch
      // whose answer was lost had been committed.
      if (pgErrorCode(err) === PG_UNIQUE_VIOLATION && pgConstraint(err) === 'audit_event_pkey') {
        throw new Conflict('An audit event with this id already exists', 'id');
      }
      throw err;
    }
  }
}
