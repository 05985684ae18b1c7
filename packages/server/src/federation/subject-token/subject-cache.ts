import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TtlCache } from '../../services/ttl-cache.ts';

/** A cached verification outcome: the claims (never the token), or the provider's rejection. */
export type CachedOutcome = { ok: true; claims: Record<string, unknown> } | { ok: false; reason: string };

/** What Redis holds: the outcome and until when it may be used (epoch ms). */
type SharedOutcome = CachedOutcome & { until: number };

const POSITIVE_MAX_MS = 5 * 60 * 1000;
const NEGATIVE_MS = 30 * 1000;
/** Redis key prefix of shared entries (the rest of the key is {@link SubjectTokenCache.key}). */
export const SUBJECT_CACHE_PREFIX = 'fedhir:subject:';

/**
 * How long a positive outcome may be reused: min(5 min, the token's expiry when known) — known from
 * the token itself (a JWT's `exp`) or from the verified claims (RFC 7662 §2.2 introspection answers
 * `exp`), so a cached verdict never outlives the token it vouches for (protocol.md §4).
 */
function positiveTtl(claims: Record<string, unknown>, expiresAtMs: number | undefined): number {
  const now = Date.now();
  let ttl = POSITIVE_MAX_MS;
  if (expiresAtMs !== undefined) ttl = Math.min(ttl, expiresAtMs - now);
  if (typeof claims.exp === 'number' && Number.isFinite(claims.exp))
    ttl = Math.min(ttl, claims.exp * 1000 - now);
  return ttl;
}

/**
 * Cache of subject-token verifications (protocol.md §4 "Userinfo cache"): keyed by SHA-256 of the
 * provider's identity and the token (a token validated by one provider is never accepted for
 * another), kept until min(token expiry, 5 min), rejections 30 s; shared through Redis when present;
 * single-flight per key, so concurrent exchanges of one token make one provider call.
 */
export class SubjectTokenCache {
  // Bounded well below a 5-minute window of distinct tokens at full load: the cache is for the same
  // token exchanged again; with Redis the shared copy answers after a local eviction.
  private readonly local = new TtlCache<CachedOutcome>(POSITIVE_MAX_MS, 20_000);
  private readonly inflight = new Map<string, Promise<CachedOutcome>>();

  constructor(private readonly redis: Redis | undefined) {}

  static key(providerIdentity: string, token: string): string {
    return createHash('sha256').update(`${providerIdentity}\n${token}`).digest('base64url');
  }

  /**
   * The cached outcome, or `load()`'s, stored for {@link positiveTtl} (rejections 30 s). Concurrent callers of one key
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
      const ttl = outcome.ok ? positiveTtl(outcome.claims, expiresAtMs) : NEGATIVE_MS;
      if (ttl > 0) {
        this.local.set(key, outcome, ttl);
        // The expiry travels in the value, so a reader needs one GET (not GET + PTTL).
        const shared: SharedOutcome = { ...outcome, until: Date.now() + ttl };
        this.redis
          ?.set(SUBJECT_CACHE_PREFIX + key, JSON.stringify(shared), 'PX', Math.ceil(ttl))
          .catch(() => {});
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
    if (this.redis?.status !== 'ready') return undefined;
    try {
      const value = await this.redis.get(SUBJECT_CACHE_PREFIX + key);
      if (!value) return undefined;
      const { until, ...outcome } = JSON.parse(value) as SharedOutcome;
      const ttl = until - Date.now();
      if (ttl <= 0) return undefined;
      this.local.set(key, outcome as CachedOutcome, ttl);
      return outcome as CachedOutcome;
    } catch {
      // Redis down: the provider is asked, and the local cache still bounds repeats.
      return undefined;
    }
  }
}
