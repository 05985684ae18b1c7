/**
 * The subject-token cache (protocol.md §4 "Userinfo cache"; performance.md: the provider sees exactly
 * one call per distinct token), measured at a real provider (oidc-provider 9) that counts its calls:
 * repeats and concurrent exchanges of one token, cached rejections, the provider in the key, the
 * introspection and jwks paths, and two fedhir instances sharing the cache through Redis.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { generateKeyPair, SignJWT } from 'jose';
import { SUBJECT_CACHE_PREFIX, SubjectTokenCache } from '../../src/federation/subject-token/subject-cache.ts';
import { createThrowawayPostgres, ENGINES } from '../support/db.ts';
import {
  EXCHANGE_ENV,
  type ExchangeClient,
  exchange,
  exchangeClient,
  invite,
  newEmail,
  startSharedInstance,
} from '../support/exchange-fedhir.ts';
import {
  API_AUDIENCE,
  EXT_CLIENT_ID,
  EXT_CLIENT_SECRET,
  type ExchangeIdp,
  startExchangeIdp,
} from '../support/exchange-idp.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { startServer, type TestServer } from '../support/server.ts';

function assertStatus(response: Awaited<ReturnType<typeof exchange>>, status: number, context = ''): void {
  assert.equal(response.status, status, `${context} ${JSON.stringify(response.body)}`);
}

for (const engine of ENGINES) {
  describe(`subject-token cache on ${engine}`, () => {
    let server: TestServer;
    let idp: ExchangeIdp;
    let idp2: ExchangeIdp;
    let fx: ProjectFixture;
    let ui: ExchangeClient;
    let sub: string;

    before(async () => {
      idp = await startExchangeIdp();
      idp2 = await startExchangeIdp();
      server = await startServer(engine, EXCHANGE_ENV);
      fx = await createProjectFixture(server);
      ui = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
      const email = newEmail('cache');
      await invite(server, fx, { email });
      sub = idp.account(email);
    });
    after(async () => {
      await server?.close();
      await idp?.close();
      await idp2?.close();
    });

    test('repeat exchanges of one token make one userinfo call', async () => {
      const token = await idp.accessToken(sub);
      const calls = idp.counts.userinfo;
      for (let i = 0; i < 5; i++) assertStatus(await exchange(server, ui.id, token), 200, `#${i}`);
      assert.equal(idp.counts.userinfo, calls + 1);
    });

    test('50 concurrent exchanges of one token make one userinfo call (single-flight)', async () => {
      const token = await idp.accessToken(sub);
      const calls = idp.counts.userinfo;
      const responses = await Promise.all(Array.from({ length: 50 }, () => exchange(server, ui.id, token)));
      for (const r of responses) assertStatus(r, 200);
      assert.equal(idp.counts.userinfo, calls + 1);
    });

    test('a rejected token is cached: a second attempt makes no call', async () => {
      const revoked = await idp.accessToken(sub);
      await idp.revoke(revoked);
      const calls = idp.counts.userinfo;
      assertStatus(await exchange(server, ui.id, revoked), 400, 'first');
      assertStatus(await exchange(server, ui.id, revoked), 400, 'second');
      const concurrent = await Promise.all(
        Array.from({ length: 10 }, () => exchange(server, ui.id, revoked)),
      );
      for (const r of concurrent) assertStatus(r, 400, 'concurrent');
      assert.equal(idp.counts.userinfo, calls + 1);
    });

    test('two tokens make two calls', async () => {
      const calls = idp.counts.userinfo;
      const [a, b] = [await idp.accessToken(sub), await idp.accessToken(sub)];
      for (const token of [a, b, a, b]) assertStatus(await exchange(server, ui.id, token), 200);
      assert.equal(idp.counts.userinfo, calls + 2);
    });

    test('the provider is part of the key: the same token at another provider is asked again', async () => {
      const token = await idp.accessToken(sub);
      assertStatus(await exchange(server, ui.id, token), 200, 'provider A');
      // The same provider under another userinfo URL is another key: a new call.
      const aliased = await exchangeClient(server, fx, {
        userInfoUrl: `${idp.userinfoUrl}?tenant=b`,
        clientId: EXT_CLIENT_ID,
      });
      const calls = idp.counts.userinfo;
      assertStatus(await exchange(server, aliased.id, token), 200, 'provider A, other URL');
      assert.equal(idp.counts.userinfo, calls + 1);
      // Another provider never sees A's verdict: it is asked, and it refuses A's token.
      const other = await exchangeClient(server, fx, {
        userInfoUrl: idp2.userinfoUrl,
        clientId: EXT_CLIENT_ID,
      });
      const calls2 = idp2.counts.userinfo;
      assertStatus(await exchange(server, other.id, token), 400, 'provider B');
      assert.equal(idp2.counts.userinfo, calls2 + 1);
    });

    test('introspection: one call per token, and a verdict never outlives the token', async () => {
      const intro = await exchangeClient(server, fx, {
        introspectionUrl: idp.introspectionUrl,
        clientId: EXT_CLIENT_ID,
        clientSecret: EXT_CLIENT_SECRET,
        audience: API_AUDIENCE,
      });
      const token = await idp.opaqueResourceToken(sub);
      const calls = idp.counts.introspection;
      for (let i = 0; i < 3; i++) assertStatus(await exchange(server, intro.id, token), 200, `#${i}`);
      assert.equal(idp.counts.introspection, calls + 1);

      // RFC 7662 answers `exp`: the cached verdict ends with the token (not 5 minutes later).
      const shortLived = await idp.opaqueResourceToken(sub, { expiresIn: 2 });
      assertStatus(await exchange(server, intro.id, shortLived), 200, 'while valid');
      await sleep(3100);
      assertStatus(await exchange(server, intro.id, shortLived), 400, 'after expiry');
    });

    test('jwks: keys fetched once for many tokens; an unknown-kid spray refetches at most once', async () => {
      const local = await exchangeClient(server, fx, {
        issuer: idp.issuer,
        clientId: EXT_CLIENT_ID,
        audience: API_AUDIENCE,
      });
      const before = { ...idp.counts };
      for (let i = 0; i < 5; i++) {
        assertStatus(await exchange(server, local.id, await idp.jwtAccessToken(sub)), 200, `#${i}`);
      }
      assert.equal(idp.counts.jwks, before.jwks + 1, 'one key set fetch');
      assert.equal(idp.counts.discovery, before.discovery + 1, 'one discovery');
      assert.equal(idp.counts.userinfo, before.userinfo, 'no userinfo call');
      const foreign = await generateKeyPair('ES256');
      const now = Math.floor(Date.now() / 1000);
      for (let i = 0; i < 10; i++) {
        const token = await new SignJWT({ iss: idp.issuer, aud: API_AUDIENCE, sub, exp: now + 300 })
          .setProtectedHeader({ alg: 'ES256', kid: `spray-${randomBytes(4).toString('hex')}` })
          .sign(foreign.privateKey);
        assertStatus(await exchange(server, local.id, token), 400, `spray #${i}`);
      }
      assert.ok(
        idp.counts.jwks <= before.jwks + 2,
        `at most one refetch, saw ${idp.counts.jwks - before.jwks}`,
      );
    });
  });
}

const shared = Boolean(process.env.TEST_REDIS_URL && process.env.TEST_DATABASE_URL);

describe('subject-token cache shared by two instances through Redis', {
  skip: shared ? false : 'needs TEST_REDIS_URL and TEST_DATABASE_URL',
}, () => {
  let database: { url: string; drop: () => Promise<void> };
  let a: TestServer;
  let b: TestServer;
  let idp: ExchangeIdp;
  let redis: Redis;
  let fx: ProjectFixture;
  let client: ExchangeClient;
  let sub: string;

  /** Waits (bounded) until instance A's write of the entry for `token` reached Redis. */
  async function sharedEntry(token: string): Promise<void> {
    const key = SUBJECT_CACHE_PREFIX + SubjectTokenCache.key(idp.userinfoUrl, token);
    for (let i = 0; i < 100; i++) {
      if (await redis.exists(key)) return;
      await sleep(20);
    }
    assert.fail('the cache entry never reached Redis');
  }

  before(async () => {
    const redisUrl = process.env.TEST_REDIS_URL as string;
    idp = await startExchangeIdp();
    redis = new Redis(redisUrl);
    database = await createThrowawayPostgres();
    const secretKey = randomBytes(32).toString('base64url');
    a = await startSharedInstance({ databaseUrl: database.url, redisUrl, secretKey });
    b = await startSharedInstance({ databaseUrl: database.url, redisUrl, secretKey });
    fx = await createProjectFixture(a);
    client = await exchangeClient(a, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
    const email = newEmail('redis');
    await invite(a, fx, { email });
    sub = idp.account(email);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
    redis?.disconnect();
    await idp?.close();
  });

  test("the second instance's exchange of the same token makes no provider call", async () => {
    const token = await idp.accessToken(sub);
    const calls = idp.counts.userinfo;
    assertStatus(await exchange(a, client.id, token), 200, 'instance A');
    assert.equal(idp.counts.userinfo, calls + 1);
    await sharedEntry(token);
    const fromB = await exchange(b, client.id, token);
    assertStatus(fromB, 200, 'instance B');
    assert.equal(idp.counts.userinfo, calls + 1, 'instance B asked nobody');
    assert.deepEqual(fromB.body.project, { reference: `Project/${fx.project.id}` });
  });

  test('a rejection is shared too', async () => {
    const revoked = await idp.accessToken(sub);
    await idp.revoke(revoked);
    const calls = idp.counts.userinfo;
    assertStatus(await exchange(a, client.id, revoked), 400, 'instance A');
    await sharedEntry(revoked);
    assertStatus(await exchange(b, client.id, revoked), 400, 'instance B');
    assert.equal(idp.counts.userinfo, calls + 1);
  });

  test('the cache holds the claims, never the token', async () => {
    const token = await idp.accessToken(sub);
    assertStatus(await exchange(a, client.id, token), 200);
    await sharedEntry(token);
    const value = await redis.get(SUBJECT_CACHE_PREFIX + SubjectTokenCache.key(idp.userinfoUrl, token));
    assert.ok(value?.includes(sub), 'the claims');
    assert.ok(!value?.includes(token), 'not the token');
  });
});
