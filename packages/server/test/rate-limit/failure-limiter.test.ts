import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  accountKey,
  clientKey,
  FailureLimiter,
  type FailureLimiterOptions,
  ipKey,
  type LimitDecision,
  limiterKey,
} from '../../src/rate-limit/failure-limiter.ts';
import { rateLimitHeaders } from '../../src/rate-limit/headers.ts';

const WINDOW_S = 60;
const W = WINDOW_S * 1000;

/** A clock the test moves by hand, starting in the middle of a window. */
function fakeClock(start = 1_700_000_000_000 - (1_700_000_000_000 % W) + W / 2) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    set(ms: number) {
      t = ms;
    },
  };
}

function limiter(options: Partial<FailureLimiterOptions> = {}, clock = fakeClock()) {
  return {
    clock,
    rl: new FailureLimiter({
      failuresPerIp: 5,
      failuresPerSubject: 3,
      windowSeconds: WINDOW_S,
      now: clock.now,
      ...options,
    }),
  };
}

function refused(decision: LimitDecision): Extract<LimitDecision, { allowed: false }> {
  assert.equal(decision.allowed, false, 'expected a refusal');
  return decision as Extract<LimitDecision, { allowed: false }>;
}

describe('FailureLimiter (local)', () => {
  test('allows up to the limit, then refuses with a retry-after', () => {
    const { rl } = limiter();
    const keys = [ipKey('192.0.2.1'), clientKey('c1')];
    for (let i = 0; i < 3; i++) {
      assert.equal(rl.check(keys).allowed, true, `attempt ${i + 1} must be allowed`);
      rl.recordFailure(keys);
    }
    const r = refused(rl.check(keys));
    assert.equal(r.limit, 3);
    assert.ok(r.retryAfterSeconds >= 1 && r.retryAfterSeconds <= 2 * WINDOW_S, `${r.retryAfterSeconds}`);
  });

  test('the window expiry frees the key, exactly when Retry-After says', () => {
    const { rl, clock } = limiter();
    const keys = [accountKey('alice@example.com')];
    for (let i = 0; i < 3; i++) rl.recordFailure(keys);
    const r = refused(rl.check(keys));
    clock.advance((r.retryAfterSeconds - 1) * 1000);
    assert.equal(rl.check(keys).allowed, false, 'still refused a second before Retry-After');
    clock.advance(1000);
    assert.equal(rl.check(keys).allowed, true, 'allowed at Retry-After');
    clock.advance(2 * W);
    assert.equal(rl.check(keys).allowed, true);
  });

  test('sliding window: a window boundary does not hand out a fresh budget', () => {
    const clock = fakeClock();
    const boundary = clock.now() - (clock.now() % W) + W;
    clock.set(boundary - 1000);
    const { rl } = limiter({}, clock);
    const keys = [clientKey('c-boundary')];
    for (let i = 0; i < 3; i++) rl.recordFailure(keys);
    refused(rl.check(keys));
    // A fixed window would allow 3 more failures here; the weighted previous window allows at most
    // the fraction that has slid out (here: one), then refuses again for a good part of the window.
    clock.set(boundary + 1000);
    rl.recordFailure(keys);
    const r = refused(rl.check(keys));
    assert.ok(r.retryAfterSeconds >= 15, `retry after ${r.retryAfterSeconds}s`);
  });

  test('per-IP and per-subject budgets are independent', () => {
    const { rl } = limiter();
    const ip = ipKey('198.51.100.7');
    for (let i = 0; i < 3; i++) rl.recordFailure([ip, accountKey('a@x.org')]);
    // The account is spent; the IP (5) is not.
    assert.equal(refused(rl.check([ipKey('203.0.113.9'), accountKey('a@x.org')])).limit, 3);
    assert.equal(rl.check([ip, accountKey('b@x.org')]).allowed, true);
    // Two more failures on other accounts spend the IP budget.
    rl.recordFailure([ip, accountKey('c@x.org')]);
    rl.recordFailure([ip, accountKey('d@x.org')]);
    const r = refused(rl.check([ip, accountKey('e@x.org')]));
    assert.equal(r.limit, 5);
    assert.equal(rl.check([ipKey('203.0.113.9'), accountKey('e@x.org')]).allowed, true);
  });

  test('account keys are normalised; the same key twice in one call counts once', () => {
    const { rl } = limiter();
    rl.recordFailure([accountKey(' Alice@Example.COM'), accountKey('alice@example.com')]);
    rl.recordFailure([accountKey('ALICE@example.com')]);
    assert.equal(rl.check([accountKey('alice@example.com')]).allowed, true);
    rl.recordFailure([accountKey('alice@example.com')]);
    refused(rl.check([accountKey('alice@example.com')]));
  });

  test('successes are not counted: checks alone never throttle and hold no memory', () => {
    const { rl } = limiter();
    for (let i = 0; i < 10_000; i++) {
      assert.equal(rl.check([ipKey('192.0.2.50'), clientKey(`client-${i % 7}`)]).allowed, true);
    }
    assert.equal(rl.stats().keys, 0);
  });

  test('memory is capped: the least recently failing keys are evicted', () => {
    const { rl } = limiter({ maxKeys: 100, failuresPerSubject: 1 });
    for (let i = 0; i < 250; i++) rl.recordFailure([clientKey(`c${i}`)]);
    const stats = rl.stats();
    assert.ok(stats.keys <= 100, `keys ${stats.keys}`);
    assert.equal(stats.evicted, 150);
    refused(rl.check([clientKey('c249')]));
    assert.equal(rl.check([clientKey('c0')]).allowed, true);
  });

  test('expired windows are purged', () => {
    const { rl, clock } = limiter();
    for (let i = 0; i < 50; i++) rl.recordFailure([clientKey(`old${i}`)]);
    assert.equal(rl.stats().keys, 50);
    clock.advance(2 * W + 1000);
    rl.recordFailure([clientKey('new')]);
    assert.equal(rl.stats().keys, 1);
  });

  test('long keys are hashed, keep their budget, and are never confused with each other', () => {
    const long = 'x'.repeat(5000);
    const held = limiterKey(clientKey(`${long}a`));
    assert.match(held, /^client:#[A-Za-z0-9_-]{43}$/);
    assert.equal(limiterKey(clientKey('short')), 'client:short');
    assert.match(limiterKey(ipKey(`${'f'.repeat(200)}`)), /^ip:#/);

    const { rl } = limiter();
    for (let i = 0; i < 3; i++) rl.recordFailure([clientKey(`${long}a`)]);
    refused(rl.check([clientKey(`${long}a`)]));
    assert.equal(rl.check([clientKey(`${long}b`)]).allowed, true, 'same prefix, different key');
    // A long IP-prefixed key keeps the per-IP budget (5), not the per-subject one (3).
    const longIp = ipKey('9'.repeat(300));
    for (let i = 0; i < 4; i++) rl.recordFailure([longIp]);
    assert.equal(rl.check([longIp]).allowed, true);
    rl.recordFailure([longIp]);
    assert.equal(refused(rl.check([longIp])).limit, 5);
  });

  test('delayFor: nothing below half the budget, then growing, capped (slower answers, then a lock)', () => {
    const { rl } = limiter({ failuresPerSubject: 10, delayBaseMs: 100, delayMaxMs: 1000 });
    const keys = [accountKey('bob@example.com')];
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      delays.push(rl.delayFor(keys));
      rl.recordFailure(keys);
    }
    assert.deepEqual(delays.slice(0, 5), [0, 0, 0, 0, 0]);
    assert.equal(delays[5], 100);
    assert.equal(delays[6], 200);
    assert.ok(delays.every((d, i) => i === 0 || d >= delays[i - 1]!));
    assert.equal(Math.max(...delays), 1000);
    refused(rl.check(keys));
    assert.equal(rl.delayFor([accountKey('someone-else@example.com')]), 0);
  });

  test('rateLimitHeaders: RateLimit fields and Retry-After for a 429', () => {
    assert.deepEqual(rateLimitHeaders({ limit: 20, retryAfterSeconds: 42 }), {
      'retry-after': '42',
      'ratelimit-limit': '20',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '42',
      ratelimit: '"failures";r=0;t=42',
    });
  });
});

describe('FailureLimiter when Redis is unavailable', () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  before(() => process.on('unhandledRejection', onRejection));
  after(() => process.off('unhandledRejection', onRejection));

  test('Redis down (closed port): keeps counting locally, never throws', async () => {
    const redis = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
    });
    redis.on('error', () => {});
    const warnings: string[] = [];
    const rl = new FailureLimiter({
      failuresPerIp: 5,
      failuresPerSubject: 3,
      windowSeconds: WINDOW_S,
      redis,
      syncIntervalMs: 20,
      logger: { warn: (_obj, msg) => warnings.push(msg) },
      // Frozen mid-window: on the wall clock a minute boundary inside the test's 300 ms would roll
      // the window, and right after a roll the weighted estimate (3 × ~0.99) is under the limit.
      now: fakeClock().now,
    });
    try {
      const keys = [ipKey('192.0.2.9'), clientKey('down')];
      for (let i = 0; i < 3; i++) {
        assert.equal(rl.check(keys).allowed, true);
        rl.recordFailure(keys);
      }
      refused(rl.check(keys));
      await new Promise((resolve) => setTimeout(resolve, 300)); // ~15 sync ticks against a dead Redis
      await rl.sync();
      refused(rl.check(keys));
      assert.ok(rl.stats().unsynced >= 3, 'failures stay local until Redis is back');
    } finally {
      await rl.close();
      redis.disconnect();
    }
    assert.deepEqual(rejections, []);
  });

  test('Redis hung (accepts, never answers): a sync gives up after its timeout', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => {}); // swallow every command
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    const redis = new Redis({
      host: '127.0.0.1',
      port: address.port,
      enableReadyCheck: false,
      disableClientInfo: true,
    });
    redis.on('error', () => {});
    if (redis.status !== 'ready') await once(redis, 'ready');
    const rl = new FailureLimiter({
      failuresPerIp: 5,
      failuresPerSubject: 3,
      windowSeconds: WINDOW_S,
      redis,
      syncIntervalMs: 60_000,
      syncTimeoutMs: 100,
      now: fakeClock().now, // frozen mid-window, as above
    });
    try {
      const keys = [clientKey('hung')];
      for (let i = 0; i < 3; i++) rl.recordFailure(keys);
      const started = Date.now();
      const checkDuring = rl.sync();
      // The request path is not blocked while the sync waits.
      refused(rl.check(keys));
      await checkDuring;
      assert.ok(Date.now() - started < 1000, 'sync gave up');
      assert.equal(rl.stats().syncFailures, 1);
      assert.equal(rl.stats().unsynced, 3, 'unacknowledged failures go back to pending');
      refused(rl.check(keys));
    } finally {
      await rl.close();
      redis.disconnect();
      for (const socket of sockets) socket.destroy();
      server.close();
    }
    assert.deepEqual(rejections, []);
  });
});
