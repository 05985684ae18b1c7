import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { accountKey, clientKey, FailureLimiter, ipKey } from '../../src/rate-limit/failure-limiter.ts';

const REDIS_URL = process.env.TEST_REDIS_URL;

/** Real Redis (CI: db 15). Every test uses its own key prefix and removes its keys. */
describe('FailureLimiter shared through Redis', {
  skip: REDIS_URL ? false : 'TEST_REDIS_URL is not set',
}, () => {
  let redis: Redis;
  const prefix = `fedhir:test:rl:${randomBytes(6).toString('hex')}:`;
  const limiters: FailureLimiter[] = [];

  function make(options: { syncIntervalMs?: number } = {}): FailureLimiter {
    const rl = new FailureLimiter({
      failuresPerIp: 10,
      failuresPerSubject: 3,
      windowSeconds: 60,
      redis,
      keyPrefix: prefix,
      ...options,
    });
    limiters.push(rl);
    return rl;
  }

  before(async () => {
    redis = new Redis(REDIS_URL!, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    if (redis.status !== 'ready') await once(redis, 'ready');
  });

  after(async () => {
    for (const rl of limiters) await rl.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test("a second instance refuses after the first one's failures, within the sync interval", async () => {
    const a = make();
    const b = make();
    const keys = [ipKey('192.0.2.77'), clientKey('shared-client')];
    assert.equal(b.check(keys).allowed, true);
    for (let i = 0; i < 3; i++) a.recordFailure(keys);
    assert.equal(a.check(keys).allowed, false, 'A refuses at once (local view)');
    const started = Date.now();
    let decision = b.check(keys);
    while (decision.allowed && Date.now() - started < 3000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      decision = b.check(keys);
    }
    const elapsed = Date.now() - started;
    assert.equal(decision.allowed, false, 'B never saw the failures');
    assert.equal(decision.limit, 3);
    // Two sync ticks at most (A pushes, B reads back), plus scheduling slack.
    assert.ok(elapsed < 1500, `B refused after ${elapsed} ms`);
  });

  test('failures add up across instances (global counts, not the largest local one)', async () => {
    const a = make({ syncIntervalMs: 60_000 });
    const b = make({ syncIntervalMs: 60_000 });
    const keys = [accountKey('carol@example.com')];
    a.recordFailure(keys);
    b.recordFailure(keys);
    assert.equal(a.check(keys).allowed, true);
    await a.sync();
    await b.sync();
    a.check(keys); // A asks about the key: its next sync reads the global count back
    await a.sync();
    assert.equal(a.check(keys).allowed, true, '2 of 3');
    a.recordFailure(keys);
    assert.equal(a.check(keys).allowed, false, '3 of 3: one local + two global');
  });

  test('Redis keys are hashed (no e-mail in clear, bounded length) and expire', async () => {
    const a = make({ syncIntervalMs: 60_000 });
    const email = `dave-${'x'.repeat(3000)}@example.com`;
    a.recordFailure([accountKey(email), ipKey('192.0.2.78')]);
    await a.sync();
    const keys = await redis.keys(`${prefix}*`);
    assert.ok(keys.length >= 2);
    for (const key of keys) {
      assert.match(key.slice(prefix.length), /^[A-Za-z0-9_-]{43}:\d+$/);
      assert.ok(!key.includes('dave') && !key.includes('192.0.2.78'), key);
      const ttl = await redis.pttl(key);
      assert.ok(ttl > 0 && ttl <= 2 * 60_000 + 60_000, `ttl ${ttl}`);
    }
  });

  test('close() pushes what is still local', async () => {
    const a = make({ syncIntervalMs: 60_000 });
    const b = make({ syncIntervalMs: 60_000 });
    const keys = [clientKey('closing-client')];
    for (let i = 0; i < 3; i++) a.recordFailure(keys);
    await a.close();
    b.check(keys);
    await b.sync();
    assert.equal(b.check(keys).allowed, false);
  });
});
