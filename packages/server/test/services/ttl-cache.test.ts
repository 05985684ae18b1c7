/** The bounded TTL cache behind login, membership, client and verification caching. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { TtlCache } from '../../src/services/ttl-cache.ts';

beforeEach(() => mock.timers.enable({ apis: ['Date'], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

test('an entry is served until its TTL and not after', () => {
  const cache = new TtlCache<string>(5_000);
  cache.set('a', 'A');
  mock.timers.tick(4_999);
  assert.equal(cache.get('a'), 'A');
  mock.timers.tick(1);
  assert.equal(cache.get('a'), undefined);
});

test('a cache written faster than it is read does not keep expired entries', () => {
  const cache = new TtlCache<number>(5_000, 100_000);
  // 10 000 writes per second for 60 s: with a 5 s TTL, at most ~50 000 are alive at any time.
  for (let second = 0; second < 60; second++) {
    for (let i = 0; i < 10_000; i++) cache.set(`k${second}-${i}`, i);
    mock.timers.tick(1_000);
  }
  assert.ok(cache.size <= 51_000, `held ${cache.size} entries, most of them expired`);
  assert.equal(cache.get('k59-9999'), 9_999);
});

test('rewriting a key renews it and the bound evicts the oldest write first', () => {
  const cache = new TtlCache<string>(5_000, 2);
  cache.set('a', 'A');
  cache.set('b', 'B');
  cache.set('a', 'A2'); // now newer than b
  cache.set('c', 'C'); // evicts b, the oldest write
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.get('a'), 'A2');
  assert.equal(cache.get('c'), 'C');
});
