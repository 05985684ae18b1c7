import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimitConfig } from '../config.ts';

/**
 * Failure budgets for `/auth/*` and `/oauth2/*` (protocol.md §7.9, §7.14; security-cases OP-31,
 * TX-31, RB-15).
 *
 * What is counted: FAILED authentication attempts only — wrong client secrets, bad or replayed codes,
 * bad refresh tokens, rejected subject tokens, wrong passwords. RFC 6749 §2.3.1 and RFC 6819
 * §4.4.1.11 / §5.1.4.2.3 require protection against brute force on credentials; ASVS 5.0 V6.3.1
 * (ASVS 4.0 2.2.1) asks for it without permanently locking out the legitimate owner (OP-31). Counting
 * failures rather than requests means a benchmark or a busy legitimate client is never throttled
 * (§7.9), while guessing is.
 *
 * Two budgets, checked together: per IP (`ip:<addr>`, {@link RateLimitConfig.failuresPerIp}) stops
 * one source from spraying many accounts; per subject (`client:<id>`, `account:<email>`,
 * {@link RateLimitConfig.failuresPerSubject}) stops a botnet from concentrating on one account.
 *
 * Windows are "sliding window counters": the current fixed window's count plus the previous one's,
 * weighted by how much of it still overlaps the sliding window. A plain fixed window would let an
 * attacker spend two budgets back to back around a boundary; a true sliding log would cost memory per
 * failure. The estimate is within one window's rounding of a true sliding window.
 *
 * Hot path (performance.md): {@link check} and {@link recordFailure} are synchronous and touch only a
 * Map. With Redis, local failures are pushed and global totals read back on a timer (every 250 ms by
 * default, one pipelined round trip), so another instance sees them within a fraction of a second;
 * Redis being slow or down only delays that sharing — the limiter keeps counting locally and never
 * throws or blocks a request. An instance that has never been asked about a key admits that key's
 * first request(s) until its next read-back: a bounded leak (≤ one sync interval), the price of
 * keeping Redis off the request path.
 */

/** Answer of {@link FailureLimiter.check}. */
export type LimitDecision =
  | { allowed: true }
  | {
      allowed: false;
      /** Seconds until the refusing budget admits another attempt (Retry-After, RFC 9110 §10.2.3). */
      retryAfterSeconds: number;
      /** The budget that refused (failures per window). */
      limit: number;
    };

export type LimitRefusal = Extract<LimitDecision, { allowed: false }>;

/** The minimal logger the limiter reports Redis trouble to (pino / Fastify's logger fit). */
export interface LimiterLogger {
  warn(obj: object, msg: string): void;
}

export interface FailureLimiterOptions extends RateLimitConfig {
  /** Shared counters across instances. Optional: without it the limiter is per process. */
  redis?: Redis | undefined;
  /** Clock in ms (tests inject one instead of sleeping). */
  now?: () => number;
  /** Most keys held in memory; the least recently failing are evicted beyond it. Default 100 000. */
  maxKeys?: number;
  /** How often local counts are pushed to Redis and global ones read back. Default 250 ms. */
  syncIntervalMs?: number;
  /** A sync that has not answered by then counts as failed (Redis hung). Default 1000 ms. */
  syncTimeoutMs?: number;
  /** Prefix of the Redis keys. Default `fedhir:rl:`. */
  keyPrefix?: string;
  /** Password slow-down (§7.14): first added delay once half the budget is used. Default 250 ms. */
  delayBaseMs?: number;
  /** Cap of the added delay. Default 3000 ms. */
  delayMaxMs?: number;
  logger?: LimiterLogger | undefined;
}

export interface LimiterStats {
  /** Keys held in memory. */
  keys: number;
  /** Keys evicted because the memory cap was reached. */
  evicted: number;
  /** Local failures not yet acknowledged by Redis. */
  unsynced: number;
  /** Syncs that failed (Redis down, slow or erroring). */
  syncFailures: number;
}

/** Per-key state. `global + pending + inflight` is this instance's best count for `windowStart`. */
interface Entry {
  readonly mapKey: string;
  readonly limit: number;
  /** Start (ms) of the fixed window the counts below belong to. */
  windowStart: number;
  /** Count acknowledged by Redis for this window (includes this instance's pushed failures). */
  global: number;
  /** Local failures not yet pushed. */
  pending: number;
  /** Failures pushed in the sync in flight, not yet acknowledged. */
  inflight: number;
  /** Count of the previous window (weighted into the sliding estimate). */
  prev: number;
  /** SHA-256 of the map key, used in Redis key names (computed once, off the hot path). */
  redisId?: string;
}

interface Push {
  entry: Entry;
  windowStart: number;
  n: number;
}

const ALLOWED: LimitDecision = Object.freeze({ allowed: true });

/**
 * Keys longer than this are hashed before they are used as map keys: they may carry attacker-chosen
 * strings (client ids, e-mails) of several KB, and holding 100k of those would defeat the memory cap.
 */
const MAX_RAW_KEY = 128;

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** `ip:<addr>` — the per-IP budget. Use the address Fastify resolved (TRUST_PROXY decides). */
export function ipKey(address: string): string {
  return `ip:${address}`;
}

/** `client:<id>` — the per-subject budget of a ClientApplication (bad secrets, codes, tokens). */
export function clientKey(clientId: string): string {
  return `client:${clientId}`;
}

/**
 * `account:<email>` — the per-subject budget of a sign-in name. Lower-cased and trimmed so that
 * `Alice@x` and `alice@x ` share one budget. Count it for unknown e-mails too (§7.14: the same
 * answer and timing whether or not the account exists).
 */
export function accountKey(email: string): string {
  return `account:${email.trim().toLowerCase()}`;
}

/**
 * The form in which a key is held in memory: itself when short, else its budget prefix (`ip:`,
 * `client:`, `account:`) and the SHA-256 of the whole key, so that the memory cap bounds bytes too.
 */
export function limiterKey(key: string): string {
  if (key.length <= MAX_RAW_KEY) return key;
  const colon = key.indexOf(':');
  const prefix = colon > 0 && colon <= 16 ? key.slice(0, colon + 1) : '';
  return `${prefix}#${sha256(key)}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis sync timed out after ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();
  /** Entries with local failures to push at the next sync. */
  private readonly dirty = new Set<Entry>();
  /** Map keys checked since the last sync, whose global counts are read back (Redis only). */
  private readonly touched = new Set<string>();
  private readonly windowMs: number;
  private readonly perIp: number;
  private readonly perSubject: number;
  private readonly now: () => number;
  private readonly maxKeys: number;
  private readonly syncTimeoutMs: number;
  private readonly keyPrefix: string;
  private readonly delayBaseMs: number;
  private readonly delayMaxMs: number;
  private readonly redis: Redis | undefined;
  private readonly logger: LimiterLogger | undefined;
  private readonly purgeEveryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private lastPurge = 0;
  private lastSyncWarning = 0;
  private evicted = 0;
  private syncFailures = 0;
  private closed = false;

  constructor(options: FailureLimiterOptions) {
    this.windowMs = Math.max(1, options.windowSeconds) * 1000;
    this.perIp = Math.max(1, options.failuresPerIp);
    this.perSubject = Math.max(1, options.failuresPerSubject);
    this.now = options.now ?? Date.now;
    this.maxKeys = Math.max(1, options.maxKeys ?? 100_000);
    this.syncTimeoutMs = options.syncTimeoutMs ?? 1000;
    this.keyPrefix = options.keyPrefix ?? 'fedhir:rl:';
    this.delayBaseMs = options.delayBaseMs ?? 250;
    this.delayMaxMs = options.delayMaxMs ?? 3000;
    this.redis = options.redis;
    this.logger = options.logger;
    // Expired windows are swept at most this often: a sweep is O(keys), never per request.
    this.purgeEveryMs = Math.min(this.windowMs, 60_000);
    if (this.redis) {
      this.timer = setInterval(() => void this.sync(), options.syncIntervalMs ?? 250);
      this.timer.unref();
    }
  }

  /**
   * Whether another attempt may be made for every one of `keys` (typically the caller's IP and the
   * client or account named). Synchronous: no I/O. Call it BEFORE verifying the credential, so a
   * locked-out guesser learns nothing (not even whether the guess was right) — RFC 6819 §5.1.4.2.3.
   */
  check(keys: readonly string[]): LimitDecision {
    const now = this.now();
    let worst: LimitRefusal | undefined;
    for (const key of keys) {
      const mapKey = this.mapKey(key);
      if (this.redis && this.touched.size < this.maxKeys) this.touched.add(mapKey);
      const entry = this.entries.get(mapKey);
      if (!entry) continue;
      const refusal = this.refusal(entry, now);
      if (refusal && (!worst || refusal.retryAfterSeconds > worst.retryAfterSeconds)) worst = refusal;
    }
    return worst ?? ALLOWED;
  }

  /** Counts one failed attempt against each of `keys`. Never call it for successes (§7.9). */
  recordFailure(keys: readonly string[]): void {
    const now = this.now();
    const windowStart = now - (now % this.windowMs);
    if (now - this.lastPurge >= this.purgeEveryMs) this.purge(now);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (keys.indexOf(key) < i) continue; // the same key twice in one call counts once
      const mapKey = this.mapKey(key);
      let entry = this.entries.get(mapKey);
      if (entry) {
        // Re-insert: Map order is then "least recently failing first", the eviction order.
        this.entries.delete(mapKey);
        this.entries.set(mapKey, entry);
      } else {
        entry = this.insert(mapKey, windowStart, now);
      }
      this.roll(entry, windowStart);
      entry.pending++;
      if (this.redis) this.dirty.add(entry);
    }
  }

  /**
   * Added delay (ms) before answering a password attempt (§7.14: "slower answers, then a lock";
   * the "tar pit" of RFC 6819 §5.1.4.2.4, before the lock of §5.1.4.2.3):
   * 0 until half of a budget is used, then doubling per further failure up to `delayMaxMs`; when the
   * budget is spent, {@link check} refuses outright. Apply it whether or not the account exists, so
   * timing tells nothing (no user enumeration: ASVS V6.3, §7.14). Await it with a timer, never block.
   */
  delayFor(keys: readonly string[]): number {
    const now = this.now();
    let delay = 0;
    for (const key of keys) {
      const entry = this.entries.get(this.mapKey(key));
      if (!entry) continue;
      const half = entry.limit / 2;
      const estimate = this.estimate(entry, now);
      if (estimate < half) continue;
      const ms = Math.min(this.delayMaxMs, this.delayBaseMs * 2 ** Math.floor(estimate - half));
      if (ms > delay) delay = ms;
    }
    return delay;
  }

  stats(): LimiterStats {
    let unsynced = 0;
    if (this.redis) for (const entry of this.entries.values()) unsynced += entry.pending + entry.inflight;
    return { keys: this.entries.size, evicted: this.evicted, unsynced, syncFailures: this.syncFailures };
  }

  /**
   * Pushes local failures to Redis and reads back the global counts of the keys checked since the
   * last sync. Runs on the timer; exposed for shutdown and tests. Never rejects.
   */
  sync(): Promise<void> {
    if (!this.redis) return Promise.resolve();
    if (!this.syncing) {
      this.syncing = this.runSync(this.redis)
        .catch((err: unknown) => this.reportSyncFailure(err))
        .finally(() => {
          this.syncing = undefined;
        });
    }
    return this.syncing;
  }

  /** Stops the timer and pushes what is still local (best effort: bounded by `syncTimeoutMs`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.syncing;
    await this.sync();
  }

  private mapKey(key: string): string {
    return limiterKey(key);
  }

  private limitFor(mapKey: string): number {
    return mapKey.startsWith('ip:') ? this.perIp : this.perSubject;
  }

  private insert(mapKey: string, windowStart: number, now: number): Entry {
    if (this.entries.size >= this.maxKeys) {
      if (now - this.lastPurge >= 1000) this.purge(now);
      // Still full of live keys: evict the least recently failing, so that a flood of distinct keys
      // cannot grow memory (RB-15). With Redis the evicted count survives there and is read back.
      while (this.entries.size >= this.maxKeys) {
        const oldest = this.entries.keys().next().value;
        if (oldest === undefined) break;
        const victim = this.entries.get(oldest);
        if (victim) this.dirty.delete(victim);
        this.entries.delete(oldest);
        this.evicted++;
      }
    }
    const entry: Entry = {
      mapKey,
      limit: this.limitFor(mapKey),
      windowStart,
      global: 0,
      pending: 0,
      inflight: 0,
      prev: 0,
    };
    this.entries.set(mapKey, entry);
    return entry;
  }

  /** Drops entries whose current and previous windows are both over: they count for nothing. */
  private purge(now: number): void {
    this.lastPurge = now;
    const horizon = now - 2 * this.windowMs;
    for (const [mapKey, entry] of this.entries) {
      if (entry.windowStart <= horizon) {
        this.entries.delete(mapKey);
        this.dirty.delete(entry);
      }
    }
  }

  /** Moves an entry to the window starting at `windowStart` (its old count becomes `prev`). */
  private roll(entry: Entry, windowStart: number): void {
    if (windowStart <= entry.windowStart) return;
    // Unpushed failures of the finished window are not pushed any more: they stay in `prev` here,
    // and other instances lose at most one sync interval's worth of them.
    entry.prev = windowStart - entry.windowStart === this.windowMs ? this.count(entry) : 0;
    entry.windowStart = windowStart;
    entry.global = 0;
    entry.pending = 0;
    entry.inflight = 0;
  }

  private count(entry: Entry): number {
    return entry.global + entry.pending + entry.inflight;
  }

  private estimate(entry: Entry, now: number): number {
    const windowStart = now - (now % this.windowMs);
    this.roll(entry, windowStart);
    const overlap = (this.windowMs - (now - windowStart)) / this.windowMs;
    return this.count(entry) + entry.prev * overlap;
  }

  private refusal(entry: Entry, now: number): LimitRefusal | undefined {
    const estimate = this.estimate(entry, now);
    if (estimate < entry.limit) return undefined;
    const w = this.windowMs;
    const current = this.count(entry);
    const limit = entry.limit;
    // When, with no further failures, the estimate drops below the limit.
    const until =
      current >= limit
        ? entry.windowStart + w + w * (1 - limit / current)
        : entry.windowStart + w * (1 - (limit - current) / entry.prev);
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.floor((until - now) / 1000) + 1), limit };
  }

  private redisKey(entry: Entry | string, windowStart: number): string {
    let id: string;
    if (typeof entry === 'string') {
      id = sha256(entry);
    } else {
      entry.redisId ??= sha256(entry.mapKey);
      id = entry.redisId;
    }
    // Hashed even when short: uniform length, and no e-mail addresses stored in Redis in clear.
    return `${this.keyPrefix}${id}:${windowStart}`;
  }

  private async runSync(redis: Redis): Promise<void> {
    // Not connected: keep counting locally; queued commands would only pile up.
    if (redis.status !== 'ready') return;
    const now = this.now();
    const w = this.windowMs;
    const windowStart = now - (now % w);
    const pushes: Push[] = [];
    const pushed = new Set<string>();
    for (const entry of this.dirty) {
      this.roll(entry, windowStart);
      if (entry.pending === 0) continue;
      pushes.push({ entry, windowStart, n: entry.pending });
      pushed.add(entry.mapKey);
      entry.inflight += entry.pending;
      entry.pending = 0;
    }
    this.dirty.clear();
    const reads: string[] = [];
    for (const mapKey of this.touched) if (!pushed.has(mapKey)) reads.push(mapKey);
    this.touched.clear();
    if (pushes.length === 0 && reads.length === 0) return;

    // Keys live for the current and the next window (where they are the weighted "previous").
    const ttl = 2 * w + 60_000;
    const pipeline = redis.pipeline();
    for (const push of pushes) {
      const key = this.redisKey(push.entry, windowStart);
      pipeline.incrby(key, push.n);
      pipeline.pexpire(key, ttl);
      pipeline.get(this.redisKey(push.entry, windowStart - w));
    }
    for (const mapKey of reads) {
      const entry = this.entries.get(mapKey);
      const source = entry ?? mapKey;
      pipeline.mget(this.redisKey(source, windowStart), this.redisKey(source, windowStart - w));
    }

    let results: [Error | null, unknown][] | null;
    try {
      results = await withTimeout(pipeline.exec(), this.syncTimeoutMs);
    } catch (err) {
      results = null;
      this.reportSyncFailure(err);
    }
    if (!results) {
      // A timed-out push may still land in Redis later and then count twice: over-counting failures
      // errs on the safe side, and only happens while Redis is slow.
      for (const push of pushes) this.restore(push);
      return;
    }

    let i = 0;
    for (const push of pushes) {
      const [incrErr, total] = results[i] ?? [new Error('missing reply'), null];
      const [, prev] = results[i + 2] ?? [null, null];
      i += 3;
      if (incrErr) {
        this.restore(push);
        this.reportSyncFailure(incrErr);
        continue;
      }
      const entry = push.entry;
      const globalTotal = Number(total) || 0;
      if (entry.windowStart === push.windowStart) {
        entry.inflight -= push.n;
        entry.global = Math.max(entry.global, globalTotal);
        entry.prev = Math.max(entry.prev, Number(prev) || 0);
      } else if (entry.windowStart === push.windowStart + w) {
        entry.prev = Math.max(entry.prev, globalTotal);
      }
    }
    for (const mapKey of reads) {
      const [err, values] = results[i++] ?? [new Error('missing reply'), null];
      if (err || !Array.isArray(values)) continue;
      const current = Number(values[0]) || 0;
      const prev = Number(values[1]) || 0;
      let entry = this.entries.get(mapKey);
      if (!entry) {
        if (current === 0 && prev === 0) continue;
        entry = this.insert(mapKey, windowStart, now);
      }
      this.roll(entry, windowStart);
      if (entry.windowStart !== windowStart) continue; // the window moved on while we waited
      entry.global = Math.max(entry.global, current);
      entry.prev = Math.max(entry.prev, prev);
    }
    if (this.now() - this.lastPurge >= this.purgeEveryMs) this.purge(this.now());
  }

  /** A push that Redis did not acknowledge goes back to `pending` for the next sync. */
  private restore(push: Push): void {
    const entry = push.entry;
    if (entry.windowStart !== push.windowStart) return;
    entry.inflight -= push.n;
    entry.pending += push.n;
    if (this.entries.get(entry.mapKey) === entry) this.dirty.add(entry);
  }

  private reportSyncFailure(err: unknown): void {
    this.syncFailures++;
    const now = Date.now();
    // At most one warning a minute: Redis down must not flood the log 4 times a second.
    if (this.logger && now - this.lastSyncWarning >= 60_000) {
      this.lastSyncWarning = now;
      this.logger.warn(
        { err: err instanceof Error ? err.message : String(err), failures: this.syncFailures },
        'rate-limit counters not shared: Redis sync failed; counting locally',
      );
    }
  }
}
