import { Conflict } from '../errors/http-errors.ts';
import { pgErrorCode } from '../storage/db.ts';
import { type AuditInput, type AuditRecord, toAuditRecord } from './audit-event.ts';
import type { AuditWriter } from './audit-store.ts';

export type { AuditAction, AuditEvent, AuditInput, AuditOutcome, AuditRecord } from './audit-event.ts';

/** The minimal logger the audit log reports to (pino / Fastify's logger fit). */
export interface AuditLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface AuditLogOptions {
  /** Most events per INSERT statement. Default 200. */
  batchSize?: number;
  /** Longest an event waits before its batch is written. Default 200 ms. */
  flushIntervalMs?: number;
  /** Most events held while the database does not take them. Default 100 000. */
  maxPending?: number;
  /** First retry delay after a failed write; doubles per failure. Default 100 ms. */
  retryBaseMs?: number;
  /** Longest retry delay. Default 30 s. */
  retryMaxMs?: number;
  /** How long {@link AuditLog.flush} keeps retrying before it rejects. Default 10 s. */
  flushTimeoutMs?: number;
  /** Where trouble is reported. Default: JSON lines on stderr. */
  logger?: AuditLogger | undefined;
}

export interface AuditStats {
  /** Events waiting to be written. */
  pending: number;
  /** Events written. */
  written: number;
  /** Events refused because `maxPending` was reached (each one also reported in the log). */
  overflowed: number;
  /** Events the database refused as invalid (each one written to the log in full instead). */
  rejected: number;
  /** Failed write attempts so far. */
  failedWrites: number;
}

type PendingEvent = AuditRecord;

/** Connection-level trouble is retried; data errors (classes 22, 23) will never succeed as they are. */
function isDataError(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = pgErrorCode(err);
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

const stderrLogger: AuditLogger = {
  warn(obj, msg) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', ...obj, msg })}\n`);
  },
  error(obj, msg) {
    process.stderr.write(`${JSON.stringify({ level: 'error', ...obj, msg })}\n`);
  },
};

/**
 * The audit trail (protocol.md §1: an AuditEvent for every login, exchange, refresh, logout and
 * failure), written off the request path (performance.md: "audit events batched, never dropped,
 * flushed on shutdown").
 *
 * {@link record} only builds the event's row and queues it: no I/O, no promise. Queued events are
 * written with {@link AuditWriter.append} — one statement per batch of up to `batchSize` — as
 * soon as a batch is full, and at most `flushIntervalMs` after the first event of a partial batch.
 * One write runs at a time, in order.
 *
 * Never dropped (ASVS 4.0 7.1.3, 7.3.3): a failed write keeps its batch at the head of the queue and
 * retries with exponential back-off; a write whose answer was lost is retried with the same ids, so
 * "already there" (unique violation on the id) means it had been committed. Memory stays bounded: the
 * queue holds at most `maxPending` events (a long database outage at full load); beyond it events
 * are counted and reported loudly in the log, never silently. An event the database refuses as
 * invalid (it cannot be, by construction, but a poison event must not stall the trail behind it) is
 * isolated, written to the log in full, and counted. On shutdown {@link close} flushes and logs
 * whatever the database still would not take.
 */
export class AuditLog {
  private readonly pending: PendingEvent[] = [];
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly maxPending: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly flushTimeoutMs: number;
  private readonly logger: AuditLogger;
  /** The write loop in progress. */
  private writing: Promise<void> | undefined;
  /** Set while there are queued events: fires when the oldest partial batch is due. */
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Back-off after a failed write; `retryAt` is when it fires. */
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  /** Partial batches are due (the interval passed, or a flush asked). */
  private due = false;
  /** Events at the head of the queue whose last write failed with an unknown outcome. */
  private inDoubt = 0;
  /** Events at the head to write one by one (a batch hit a data error). */
  private isolate = 0;
  private consecutiveFailures = 0;
  private lastFailureLog = 0;
  private lastOverflowLog = 0;
  private written = 0;
  private overflowed = 0;
  private rejected = 0;
  private failedWrites = 0;
  private closed = false;

  constructor(
    private readonly store: AuditWriter,
    options: AuditLogOptions = {},
  ) {
    this.batchSize = Math.max(1, options.batchSize ?? 200);
    this.flushIntervalMs = Math.max(0, options.flushIntervalMs ?? 200);
    this.maxPending = Math.max(1, options.maxPending ?? 100_000);
    this.retryBaseMs = Math.max(1, options.retryBaseMs ?? 100);
    this.retryMaxMs = Math.max(this.retryBaseMs, options.retryMaxMs ?? 30_000);
    this.flushTimeoutMs = options.flushTimeoutMs ?? 10_000;
    this.logger = options.logger ?? stderrLogger;
  }

  /**
   * Queues one event. Synchronous, never throws, never waits for the database: call it on the
   * request path without `await`.
   */
  record(input: AuditInput): void {
    let event: PendingEvent;
    try {
      event = toAuditRecord(input);
    } catch (err) {
      this.logger.error({ err: errorText(err), action: input?.action }, 'audit event could not be built');
      return;
    }
    if (this.closed) {
      // Too late for the database (it is closing): the log keeps it.
      this.logger.error({ auditEvent: event }, 'audit event recorded after shutdown; logged instead');
      return;
    }
    if (this.pending.length >= this.maxPending) {
      this.overflow(event);
      return;
    }
    this.pending.push(event);
    if (this.pending.length >= this.batchSize) {
      if (!this.immediate) {
        this.immediate = setImmediate(() => {
          this.immediate = undefined;
          this.pump();
        });
      }
    }
    this.arm();
  }

  /**
   * Writes everything queued so far (graceful shutdown, tests). Retries with back-off while the
   * database fails, for at most `flushTimeoutMs`; then rejects, with the events still queued.
   */
  async flush(): Promise<void> {
    const deadline = Date.now() + this.flushTimeoutMs;
    for (;;) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      if (this.pending.length === 0) return;
      const now = Date.now();
      if (now >= deadline) {
        throw new Error(`audit flush timed out: ${this.pending.length} events not written`);
      }
      if (this.retryTimer) {
        // Respect the back-off, within the deadline. A referenced timer: shutdown waits for it.
        const wait = Math.max(0, Math.min(this.retryAt, deadline) - now);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (this.writing) continue;
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      this.due = true;
      this.pump();
    }
  }

  /**
   * Flushes and stops the timers. What the database still refuses after `flushTimeoutMs` is written
   * to the log in full, one line per event, so that the trail survives in the log. Never rejects.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } catch (err) {
      this.logger.error(
        { err: errorText(err), unwritten: this.pending.length },
        'AUDIT: database unavailable at shutdown; unwritten audit events follow in the log',
      );
      for (const event of this.pending.splice(0)) {
        this.logger.error({ auditEvent: event }, 'audit event not written to the database');
      }
    }
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.retryTimer = this.immediate = undefined;
  }

  stats(): AuditStats {
    return {
      pending: this.pending.length,
      written: this.written,
      overflowed: this.overflowed,
      rejected: this.rejected,
      failedWrites: this.failedWrites,
    };
  }

  /** Makes sure a queued partial batch is written within `flushIntervalMs`. */
  private arm(): void {
    if (this.timer || this.pending.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      this.pump();
    }, this.flushIntervalMs);
    // The audit log alone does not keep the process alive: shutdown calls close() to flush.
    this.timer.unref();
  }

  /** Starts the write loop when there is something to write and nothing in the way. */
  private pump(): void {
    if (this.writing || this.retryTimer) return;
    if (this.pending.length === 0) {
      this.due = false;
      return;
    }
    if (!this.due && this.pending.length < this.batchSize) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
      // Events queued, or a timer that fired, while the loop was finishing.
      this.arm();
      if (this.due || this.pending.length >= this.batchSize) this.pump();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.pending.length > 0 && (this.due || this.pending.length >= this.batchSize)) {
      const size = this.isolate > 0 ? 1 : this.inDoubt > 0 ? this.inDoubt : this.batchSize;
      const batch = this.pending.slice(0, size);
      const outcome = await this.write(batch);
      if (outcome === 'retry') {
        this.scheduleRetry();
        return;
      }
      this.pending.splice(0, batch.length);
      if (this.isolate > 0) this.isolate--;
      this.inDoubt = 0;
      this.consecutiveFailures = 0;
      // What arrived while this batch was written is a new partial batch: it waits for its own
      // interval or until it fills up. Under load, batches then stay large (one statement's fixed
      // cost shared by many rows) instead of becoming one small statement per round trip.
      if (this.isolate === 0 && this.pending.length < this.batchSize) this.due = false;
    }
    if (this.pending.length === 0) this.due = false;
  }

  /** One statement. `done` means the batch is settled (written, or rejected and logged). */
  private async write(batch: PendingEvent[]): Promise<'done' | 'retry'> {
    try {
      await this.store.append(batch);
      this.written += batch.length;
      return 'done';
    } catch (err) {
      this.failedWrites++;
      if (this.inDoubt > 0 && err instanceof Conflict && err.expression === 'id') {
        // The same ids are already stored: the earlier attempt of exactly this batch committed
        // (one statement is all-or-nothing) and only its answer was lost.
        this.written += batch.length;
        return 'done';
      }
      if (isDataError(err)) {
        if (batch.length > 1) {
          // Find the poison event: write these one by one.
          this.isolate = batch.length;
          this.inDoubt = 0;
          return 'retry';
        }
        this.rejected++;
        this.logger.error(
          { err: errorText(err), auditEvent: batch[0] },
          'AUDIT: the database refused an audit event; it is logged here instead',
        );
        return 'done';
      }
      this.inDoubt = batch.length;
      this.consecutiveFailures++;
      const now = Date.now();
      if (this.consecutiveFailures === 1 || now - this.lastFailureLog >= 10_000) {
        this.lastFailureLog = now;
        this.logger.error(
          { err: errorText(err), pending: this.pending.length, failures: this.consecutiveFailures },
          'AUDIT: audit events not written yet; retrying with back-off',
        );
      }
      return 'retry';
    }
  }

  private scheduleRetry(): void {
    const delay =
      this.isolate > 0 && this.consecutiveFailures === 0
        ? 0
        : Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.max(0, this.consecutiveFailures - 1));
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.due = true;
      this.pump();
    }, delay);
    this.retryTimer.unref();
  }

  private overflow(event: PendingEvent): void {
    this.overflowed++;
    const now = Date.now();
    if (this.overflowed === 1 || now - this.lastOverflowLog >= 10_000) {
      this.lastOverflowLog = now;
      this.logger.error(
        {
          overflowed: this.overflowed,
          pending: this.pending.length,
          maxPending: this.maxPending,
          action: event.action,
          outcome: event.outcome,
        },
        'AUDIT OVERFLOW: the database has not taken audit events for too long; events are being lost',
      );
    }
  }
}
