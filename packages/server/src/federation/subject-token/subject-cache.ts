import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TtlCache } from '../../services/ttl-cache.ts';

/** A cached verification outcome: the claims (never the token), or the provider's rejection. */
export type CachedOutcome = { ok: true; claims: Record<string, unknown> } | { ok: false; reason: string };

const POSITIVE_MAX_MS = 5 * 60 * 1000;
const NEGATIVE_MS = 30 * 1000;
const PREFIX = 'fedhir:subject:';

/**
 * Cache of subject-token verifications (protocol.md §4 "Userinfo cache"): keyed by SHA-256 of the
 * provider's identity and the token (a token validated by one provider is never accepted for
 * another), kept until min(token expiry, 5 min), rejections 30 s; shared through Redis when present;
 * single-flight per key, so concurrent exchanges of one token make one provider call.
 */
export class SubjectTokenCache {
  private readonly local = new TtlCache<CachedOutcome>(POSITIVE_MAX_MS, 100_000);
  private readonly inflight = new Map<string, Promise<CachedOutcome>>();

  constructor(private readonly redis: Redis | undefined) {}

  static key(providerIdentity: string, token: string): string {
    return createHash('sha256').update(`${providerIdentity}\n${token}`).digest('base64url');
  }

  /**
   * The cached outcome, or `load()`'s, stored for `ttlMs(outcome)`. Concurrent callers of one key
   * share one `load()`.
   */
  async get(
    key: string,
    load: () => Promise<CachedOutcome>,
    expiresAtMs: number | undefined,
  ): Promise<CachedOutcome> {
    const hit = this.local.get(key);
    if (hit) return hit;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const promise = (async () => {
      const shared = await this.readShared(key);
      if (shared) return shared;
      const outcome = await load();
      const ttl = outcome.ok
        ? Math.min(POSITIVE_MAX_MS, expiresAtMs !== undefined ? expiresAtMs - Date.now() : POSITIVE_MAX_MS)
        : NEGATIVE_MS;
      if (ttl > 0) {
        this.local.set(key, outcome, ttl);
        this.redis?.set(PREFIX + key, JSON.stringify(outcome), 'PX', Math.ceil(ttl)).catch(() => {});
      }
      return outcome;
    })();
    this.inflight.set(key, promise);
    try {
      return await promise;
    } finally {
      this.inflight.delete(key);
    }
  }

  private async readShared(key: string): Promise<CachedOutcome | undefined> {
    if (!this.redis || this.redis.status !== 'ready') return undefined;
    try {
      const [value, ttl] = await Promise.all([this.redis.get(PREFIX + key), this.redis.pttl(PREFIX + key)]);
      if (!value) return undefined;
      const outcome = JSON.parse(value) as CachedOutcome;
      if (ttl > 0) this.local.set(key, outcome, ttl);
      return outcome;
    } catch {
      // Redis down: the provider is asked, and the local cache still bounds repeats.
      return undefined;
    }
  }
}
