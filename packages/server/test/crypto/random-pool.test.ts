import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomSecret } from '../../src/crypto/digest.ts';
import { pooledRandomBytes } from '../../src/crypto/random-pool.ts';

test('pooled random bytes: the length asked for, and no byte string twice across several refills', () => {
  const seen = new Set<string>();
  // 4 KB pools of 16-byte draws: 256 per pool, so 3,000 draws span a dozen refills and the wrap.
  for (let i = 0; i < 3_000; i++) {
    const bytes = pooledRandomBytes(16);
    assert.equal(bytes.length, 16);
    seen.add(bytes.toString('hex'));
  }
  assert.equal(seen.size, 3_000);
});

test('pooled random bytes: a draw that does not fit the pool’s rest starts a new pool, never overlaps', () => {
  const a = Buffer.from(pooledRandomBytes(64)); // copies: a view is valid only until the pool refills
  const b = Buffer.from(pooledRandomBytes(64));
  const c = Buffer.from(pooledRandomBytes(40));
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(b.subarray(0, 40), c);
  // Past the pooled size: its own buffer, the full length.
  const big = pooledRandomBytes(1000);
  assert.equal(big.length, 1000);
  assert.notEqual(big.buffer, pooledRandomBytes(16).buffer);
});

test('randomSecret: 32 bytes by default, base64url without padding, distinct each time', () => {
  const secrets = Array.from({ length: 500 }, () => randomSecret());
  for (const s of secrets) assert.match(s, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(new Set(secrets).size, secrets.length);
  assert.match(randomSecret(16), /^[A-Za-z0-9_-]{22}$/);
});
