import { hash, timingSafeEqual } from 'node:crypto';
import { pooledRandomBytes } from './random-pool.ts';

/**
 * SHA-256 digest (base64url) of a high-entropy secret: client secrets, codes, refresh tokens.
 * They carry ≥ 256 random bits, so a fast digest is enough at rest and a database leak yields
 * nothing usable; passwords, which are low-entropy, use argon2id instead (`password.ts`).
 */
export function digest(secret: string): string {
  // One-shot hashing: no Hash object per call (the token endpoint digests every client secret).
  return hash('sha256', secret, 'base64url');
}

/** Constant-time comparison of a presented secret with a stored digest; never throws on length. */
export function digestMatches(presented: string, storedDigest: string | undefined): boolean {
  if (!storedDigest) return false;
  const a = Buffer.from(digest(presented), 'utf8');
  const b = Buffer.from(storedDigest, 'utf8');
  // Both are digests of the same length unless the stored value is corrupt; compare equal lengths only.
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A random secret of `bytes` bytes from the CSPRNG, base64url without padding. */
export function randomSecret(bytes = 32): string {
  return pooledRandomBytes(bytes).toString('base64url');
}
