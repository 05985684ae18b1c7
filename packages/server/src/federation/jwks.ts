import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import type { GuardedFetch } from './outbound/index.ts';

/**
 * Remote key sets of identity providers, one per JWKS URL, fetched through the outbound guard.
 * jose keeps the keys, refetches on an unknown `kid` at most once per 30 s (RP-27: a spray of random
 * kids cannot hammer the provider) and never follows `jku`/`x5u` header URLs (RP-24).
 */
export class JwksCache {
  private readonly sets = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly fetch: GuardedFetch) {}

  get(url: string): JWTVerifyGetKey {
    let set = this.sets.get(url);
    if (!set) {
      if (this.sets.size > 1000) this.sets.clear();
      set = createRemoteJWKSet(new URL(url), {
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: 5_000,
        [customFetch]: this.fetch as unknown as typeof fetch,
      });
      this.sets.set(url, set);
    }
    return set;
  }
}
