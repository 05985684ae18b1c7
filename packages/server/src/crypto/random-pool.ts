import { randomFillSync } from 'node:crypto';

/**
 * CSPRNG bytes for ids and secrets, drawn from a pool that `randomFillSync` refills 4 KB at a time.
 *
 * Every call into the CSPRNG crosses into OpenSSL's DRBG under its lock: ~1.7 µs for 16 bytes in
 * isolation, an estimated 5–10 µs on a loaded 2-core machine (1.6 s in a CPU profile of the
 * token-exchange cases, ~60,000 requests, each making an AuditEvent id, a Login id and a refresh
 * token; docs/performance.md). A pool makes that one call
 * per 4 KB, as Node does for `crypto.randomUUID()`. The bytes are the CSPRNG's either way; they only
 * wait in this process's memory until used, where the secrets made from them end up anyway.
 */
const POOL_BYTES = 4096;
/** Larger requests go to the CSPRNG directly: they are rare, and would drain the pool at once. */
const MAX_POOLED = 64;

const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * `n` fresh random bytes. A view of the pool for `n` ≤ 64: read it at once and do not keep it (the
 * pool is refilled over it after the next 4 KB). No two calls get overlapping bytes.
 */
export function pooledRandomBytes(n: number): Buffer {
  if (n > MAX_POOLED) return randomFillSync(Buffer.allocUnsafe(n));
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const view = pool.subarray(offset, offset + n);
  offset += n;
  return view;
}
