/**
 * Scale-out (architecture.md "Runtime modes"; protocol.md §5–§7): two real server processes on one
 * PostgreSQL and one Redis behave as one server. A sign-in started on one instance finishes on the
 * other; a logout or revocation on one is honoured by the other on its next request (and, without
 * Redis, within 5 s); a code or a refresh token used on both at once has exactly one effect (RB-08,
 * RB-09: within the reuse grace every caller gets the same successor pair, after it a reuse revokes
 * the family); failure budgets (§7.9) and the userinfo cache (§4) are shared.
 *
 * Needs TEST_DATABASE_URL (and TEST_REDIS_URL for the Redis cases); skipped with a reason otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import pg from 'pg';
import { digest } from '../../src/crypto/digest.ts';
import { SUBJECT_CACHE_PREFIX, SubjectTokenCache } from '../../src/federation/subject-token/subject-cache.ts';
import {
  type Cluster,
  type ClusterNode,
  eventually,
  expectStatus,
  http,
  httpInvite,
  httpProjectFixture,
  httpUpdateClient,
  loginCode,
  redeemCode,
  refreshGrant,
  signIn,
  startCluster,
  superAdminToken,
  type TokenSet,
} from '../support/cluster.ts';
import { createThrowawayPostgres } from '../support/db.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from '../support/exchange-fedhir.ts';
import { EXT_CLIENT_ID, type ExchangeIdp, startExchangeIdp } from '../support/exchange-idp.ts';
import type { ProjectFixture } from '../support/fixtures.ts';
import {
  authorize,
  authorizeParams,
  NO_FAILURE_LIMITS,
  pkcePair,
  submitSignIn,
} from '../support/oauth-flows.ts';

const databaseUrl = process.env.TEST_DATABASE_URL;
const redisUrl = process.env.TEST_REDIS_URL;
const withRedis = databaseUrl && redisUrl ? false : 'needs TEST_DATABASE_URL and TEST_REDIS_URL';
const withPostgres = databaseUrl ? false : 'needs TEST_DATABASE_URL';

// Found by these tests: SUBSCRIBE once ran before the subscriber connected and was silently lost,
// so revocations reached other instances only through the 5 s cache expiry.
const LOOPBACK_IDP = { ALLOW_PRIVATE_IDP_URLS: '127.0.0.1' };

function me(node: ClusterNode, token: string) {
  return http(node, 'GET', '/auth/me', { token });
}

function loginIdOf(accessToken: string): string {
  return String(decodeJwt(accessToken).login_id);
}

/** A query on the test's own throwaway database (the source of truth both instances share). */
async function query<T>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Requests spread over both nodes, fired together (each node gets every other one). */
function onBoth<T>(nodes: ClusterNode[], n: number, fn: (node: ClusterNode) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => fn(nodes[i % nodes.length] as ClusterNode)));
}

describe('two instances on one PostgreSQL and one Redis', { skip: withRedis }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let fx: ProjectFixture;
  let idp: ExchangeIdp;
  let redis: Redis;

  const user = () => ({ email: fx.admin.email, password: fx.admin.password, clientId: fx.client.id });

  before(async () => {
    database = await createThrowawayPostgres();
    idp = await startExchangeIdp();
    redis = new Redis(redisUrl as string);
    cluster = await startCluster({
      instances: 2,
      databaseUrl: database.url,
      redisUrl: redisUrl as string,
      env: { ...NO_FAILURE_LIMITS, ...LOOPBACK_IDP },
    });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    fx = await httpProjectFixture(a, await superAdminToken(a));
  });
  after(async () => {
    await cluster?.close();
    await database?.drop();
    redis?.disconnect();
    await idp?.close();
  });

  test('a sign-in started on A is finished on B: /auth/login on A, the code redeemed at B', async () => {
    const code = await loginCode(a, user());
    const tokens = await redeemCode(b, code, fx.client.id);
    expectStatus(tokens, 200, 'code from A redeemed at B');
    for (const node of [a, b])
      expectStatus(await me(node, tokens.body.access_token), 200, `/auth/me on ${node.index}`);
    // The session continues anywhere: B's refresh token rotates at A.
    expectStatus(await refreshGrant(a, tokens.body.refresh_token), 200, 'refresh at A');
  });

  test('the hosted sign-in page rendered by A is submitted to B, and the code redeemed at A', async () => {
    const { params, pkce } = authorizeParams(fx);
    const form = await authorize({ baseUrl: a.url }, params);
    assert.equal(form.status, 200, form.text);
    const signedIn = await submitSignIn({ baseUrl: b.url }, form, {
      email: fx.admin.email,
      password: fx.admin.password,
    });
    assert.equal(signedIn.status, 302, signedIn.text);
    const code = signedIn.location?.searchParams.get('code');
    assert.ok(code, `no code in ${signedIn.location}`);
    const tokens = await http(a, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'authorization_code',
        code,
        code_verifier: pkce.verifier,
        client_id: fx.client.id,
        redirect_uri: String(params.redirect_uri),
      },
    });
    expectStatus(tokens, 200, 'redeemed at A');
  });

  test('a user with two memberships: /auth/login on A, /auth/profile on B, the code redeemed at A', async () => {
    // Invited twice into one project: one user, two memberships, so the sign-in needs a choice (§7.15).
    const email = `two.${Date.now()}@example.com`;
    const first = await httpInvite(a, fx.admin.token, fx.project.id, { email });
    const second = await http(a, 'POST', `/admin/projects/${fx.project.id}/invite`, {
      token: fx.admin.token,
      json: { resourceType: 'Practitioner', firstName: 'Second', lastName: 'Profile', email },
    });
    expectStatus(second, 201, 'second membership');
    const pkce = pkcePair();
    const started = await http(a, 'POST', '/auth/login', {
      json: {
        email,
        password: first.password,
        clientId: fx.client.id,
        codeChallenge: pkce.challenge,
        codeChallengeMethod: 'S256',
      },
    });
    expectStatus(started, 200, '/auth/login on A');
    assert.equal(started.body.code, undefined, 'no implicit choice');
    assert.equal(started.body.memberships?.length, 2, started.text);
    const chosen = await http(b, 'POST', '/auth/profile', {
      json: { login: started.body.login, profile: second.body.id },
    });
    expectStatus(chosen, 200, '/auth/profile on B');
    const tokens = await http(a, 'POST', '/oauth2/token', {
      form: { grant_type: 'authorization_code', code: chosen.body.code, code_verifier: pkce.verifier },
    });
    expectStatus(tokens, 200, 'redeemed at A');
    const session = await me(b, tokens.body.access_token);
    expectStatus(session, 200, '/auth/me on B');
    assert.equal(session.body.membership?.id, second.body.id, 'the membership chosen on B');
  });

  test('a logout on A is honoured by B on its very next request (Redis invalidation)', {}, async () => {
    for (let round = 0; round < 5; round++) {
      const tokens = await signIn(a, user());
      // B has checked the session, so it holds it in its cache: the logout must reach that cache.
      expectStatus(await me(b, tokens.access_token), 200, `round ${round}: before logout`);
      const out = await http(a, 'POST', '/oauth2/logout', {
        token: tokens.access_token,
        json: {},
        headers: { 'content-type': 'application/fhir+json' },
      });
      expectStatus(out, 200, 'logout on A');
      expectStatus(await me(b, tokens.access_token), 401, `round ${round}: /auth/me on B right after`);
      expectStatus(await me(a, tokens.access_token), 401, `round ${round}: /auth/me on A`);
      const refreshed = await refreshGrant(b, tokens.refresh_token as string);
      expectStatus(refreshed, 400, 'the refresh token died with the session');
      assert.equal(refreshed.body.error, 'invalid_grant');
    }
  });

  test('a revocation on B (RFC 7009, refresh token) is honoured by A on its next request', {}, async () => {
    const tokens = await signIn(a, user());
    expectStatus(await me(a, tokens.access_token), 200, 'before');
    const revoked = await http(b, 'POST', '/oauth2/revoke', {
      form: { token: tokens.refresh_token as string, client_id: fx.client.id },
    });
    expectStatus(revoked, 200, 'revoke on B');
    expectStatus(await me(a, tokens.access_token), 401, '/auth/me on A right after');
  });

  test('RB-08 across instances: one code redeemed concurrently on A and B → exactly one success, then the grant is revoked', async () => {
    for (let round = 0; round < 3; round++) {
      const code = await loginCode(a, user());
      const results = await onBoth([a, b], 10, (node) => redeemCode(node, code, fx.client.id));
      const ok = results.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, `round ${round}: ${results.map((r) => r.status).join(',')}`);
      for (const r of results.filter((r) => r.status !== 200)) {
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.error, 'invalid_grant', r.text);
      }
      // RFC 6749 §4.1.2: the second redemption revoked what the first issued — on both instances.
      const winner = ok[0]?.body as TokenSet;
      for (const node of [a, b]) {
        expectStatus(
          await me(node, winner.access_token),
          401,
          `round ${round}: winner's token on ${node.index}`,
        );
      }
      expectStatus(await refreshGrant(b, winner.refresh_token as string), 400, 'its refresh token');
    }
  });

  test('RB-09 across instances: one refresh token used concurrently on A and B within the grace → the same successor pair for every caller, no forked family', async () => {
    const tokens = await signIn(a, user());
    const loginId = loginIdOf(tokens.access_token);
    const r0 = tokens.refresh_token as string;
    const results = await onBoth([a, b], 10, (node) => refreshGrant(node, r0));
    for (const r of results) expectStatus(r, 200, 'every caller within the grace');
    const pairs = new Set(results.map((r) => `${r.body.access_token} ${r.body.refresh_token}`));
    assert.equal(pairs.size, 1, 'every caller got the same successor pair');
    const r1 = results[0]?.body.refresh_token as string;
    assert.notEqual(r1, r0);
    // One family, one successor: the original row (rotated) and exactly one live successor.
    const rows = await query<{ digest: string; rotated: boolean }>(
      database.url,
      'SELECT digest, rotated_at IS NOT NULL AS rotated FROM refresh_token WHERE login_id = $1',
      [loginId],
    );
    assert.deepEqual(
      rows.map((r) => [r.digest, r.rotated]).sort(),
      [
        [digest(r0), true],
        [digest(r1), false],
      ].sort(),
      'no forked family',
    );
    // Presented again within the grace, the old token still answers that same pair.
    const again = await refreshGrant(b, r0);
    expectStatus(again, 200, 'r0 again within the grace');
    assert.equal(again.body.refresh_token, r1);
    // The successor continues the chain.
    const next = await refreshGrant(b, r1);
    expectStatus(next, 200, 'r1 rotates');
    const r2 = next.body.refresh_token as string;
    expectStatus(await me(a, next.body.access_token), 200, 'r2 session live');

    // After the grace (aged in the shared database, as the clock would), a reuse of r0 revokes the
    // whole family: r2 and its access token die on both instances.
    await query(
      database.url,
      `UPDATE refresh_token SET rotated_at = rotated_at - interval '120 seconds' WHERE digest = $1`,
      [digest(r0)],
    );
    const reused = await refreshGrant(a, r0);
    expectStatus(reused, 400, 'r0 after the grace');
    assert.equal(reused.body.error, 'invalid_grant');
    const dead = await refreshGrant(b, r2);
    expectStatus(dead, 400, 'r2 after the family was revoked');
    assert.equal(dead.body.error, 'invalid_grant');
    // At once on the revoking instance; on the other within the 5 s every instance honours
    // (at once with Redis invalidation: see the cases above).
    expectStatus(await me(a, next.body.access_token), 401, 'family access token on A');
    assert.ok(
      await eventually(async () => (await me(b, next.body.access_token)).status === 401, 5000, 100),
      'family access token on B within 5 s',
    );
  });

  test('RB-09 after the grace, concurrently on A and B: no caller gets a token and the family is revoked', async () => {
    const tokens = await signIn(a, user());
    const r0 = tokens.refresh_token as string;
    const first = await refreshGrant(a, r0);
    expectStatus(first, 200, 'first use');
    await query(
      database.url,
      `UPDATE refresh_token SET rotated_at = rotated_at - interval '120 seconds' WHERE digest = $1`,
      [digest(r0)],
    );
    const results = await onBoth([a, b], 6, (node) => refreshGrant(node, r0));
    for (const r of results) {
      expectStatus(r, 400, 'reuse after the grace');
      assert.equal(r.body.error, 'invalid_grant');
    }
    expectStatus(await refreshGrant(b, first.body.refresh_token), 400, 'the successor is revoked');
    for (const node of [a, b]) {
      assert.ok(
        await eventually(async () => (await me(node, first.body.access_token)).status === 401, 5000, 100),
        `family access token on ${node.index} within 5 s`,
      );
    }
  });

  test('the userinfo cache is shared: a token exchanged at A is not verified at the provider again by B', async () => {
    const client = await http(a, 'POST', `/admin/projects/${fx.project.id}/client`, {
      token: await superAdminToken(a),
      json: { name: 'exchange app' },
    });
    expectStatus(client, 201, 'client');
    const put = await httpUpdateClient(a, fx.admin.token, client.body.id, {
      identityProvider: { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
    });
    expectStatus(put, 200, 'identity provider configured by the project admin');
    const email = `exchange.${Date.now()}@example.com`;
    await httpInvite(a, fx.admin.token, fx.project.id, { email });
    const sub = idp.account(email);
    const subjectToken = await idp.accessToken(sub);
    const form = {
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: ACCESS_TOKEN_TYPE,
      client_id: client.body.id,
      subject_token: subjectToken,
    };

    const calls = idp.counts.userinfo;
    const atA = await http(a, 'POST', '/oauth2/token', { form });
    expectStatus(atA, 200, 'exchange at A');
    assert.equal(idp.counts.userinfo, calls + 1, 'A asked the provider once');
    // The cache write to Redis happens after A answered: wait (bounded) until it is there.
    const key = SUBJECT_CACHE_PREFIX + SubjectTokenCache.key(idp.userinfoUrl, subjectToken);
    assert.ok(await eventually(async () => (await redis.exists(key)) === 1, 3000), 'entry reached Redis');
    const atB = await http(b, 'POST', '/oauth2/token', { form });
    expectStatus(atB, 200, 'exchange at B');
    assert.equal(idp.counts.userinfo, calls + 1, 'B answered from the shared cache');
    // Each exchange is its own grant (protocol.md §4), and each is live on the other instance.
    assert.notEqual(loginIdOf(atA.body.access_token), loginIdOf(atB.body.access_token));
    expectStatus(await me(a, atB.body.access_token), 200, "B's grant at A");
    expectStatus(await me(b, atA.body.access_token), 200, "A's grant at B");
  });
});

describe('failure budgets shared by two instances through Redis (protocol.md §7.9)', {
  skip: withRedis,
}, () => {
  let database: { url: string; drop: () => Promise<void> };
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let fx: ProjectFixture;
  const LIMIT = 5;

  before(async () => {
    database = await createThrowawayPostgres();
    cluster = await startCluster({
      instances: 2,
      databaseUrl: database.url,
      redisUrl: redisUrl as string,
      // Per-IP budget out of the way (other files' failures from 127.0.0.1 share Redis): the
      // per-account and per-client budgets are what is shared here, on fresh keys.
      env: { RATE_LIMIT_FAILURES_PER_IP: '1000000', RATE_LIMIT_FAILURES_PER_SUBJECT: String(LIMIT) },
    });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    fx = await httpProjectFixture(a, await superAdminToken(a));
  });
  after(async () => {
    await cluster?.close();
    await database?.drop();
  });

  /**
   * Probes `node` with a request that succeeds unless the budget refuses it (successes are never
   * counted, so the node adds no failure of its own), until it answers 429 or 5 s pass (the limiter
   * syncs every 250 ms). Answers the statuses seen.
   */
  async function probeUntilRefused(probe: () => Promise<{ status: number; headers: Headers }>) {
    const seen: number[] = [];
    let retryAfter: string | null = null;
    await eventually(
      async () => {
        const r = await probe();
        seen.push(r.status);
        retryAfter = r.headers.get('retry-after');
        return r.status === 429;
      },
      5000,
      100,
    );
    return { seen, retryAfter: retryAfter as string | null };
  }

  test('wrong passwords for one account on A make B answer 429 to that account, even with the right password', async () => {
    const user = await httpInvite(a, fx.admin.token, fx.project.id, {
      email: `rl.${Date.now()}@example.com`,
    });
    const { challenge } = pkcePair();
    const login = (node: ClusterNode, password: string) =>
      http(node, 'POST', '/auth/login', {
        json: { email: user.email, password, codeChallenge: challenge, codeChallengeMethod: 'S256' },
      });
    for (let i = 0; i < LIMIT; i++) expectStatus(await login(a, `wrong-${i}`), 400, `failure ${i} on A`);
    expectStatus(await login(a, user.password), 429, 'A refuses the account');
    const { seen, retryAfter } = await probeUntilRefused(() => login(b, user.password));
    assert.equal(seen.at(-1), 429, `B never refused: ${seen.join(',')}`);
    assert.ok(
      seen.slice(0, -1).every((s) => s === 200),
      `B's own attempts all succeeded: ${seen.join(',')}`,
    );
    assert.ok(Number(retryAfter) >= 1, 'Retry-After');
  });

  test('bad codes for one client on A make B answer 429 to that client, even with its right secret', async () => {
    const client = await http(a, 'POST', `/admin/projects/${fx.project.id}/client`, {
      token: await superAdminToken(a),
      json: { name: 'rate-limited app' },
    });
    expectStatus(client, 201, 'client');
    const { id, secret } = client.body as { id: string; secret: string };
    for (let i = 0; i < LIMIT; i++) {
      const r = await http(a, 'POST', '/oauth2/token', {
        form: {
          grant_type: 'authorization_code',
          code: `bogus-${i}`,
          client_id: id,
          code_verifier: 'x'.repeat(43),
        },
      });
      expectStatus(r, 400, `failure ${i} on A`);
    }
    const credentials = { grant_type: 'client_credentials', client_id: id, client_secret: secret };
    expectStatus(await http(a, 'POST', '/oauth2/token', { form: credentials }), 429, 'A refuses the client');
    const { seen, retryAfter } = await probeUntilRefused(() =>
      http(b, 'POST', '/oauth2/token', { form: credentials }),
    );
    assert.equal(seen.at(-1), 429, `B never refused: ${seen.join(',')}`);
    assert.ok(
      seen.slice(0, -1).every((s) => s === 200),
      `B's own attempts all succeeded: ${seen.join(',')}`,
    );
    assert.ok(Number(retryAfter) >= 1, 'Retry-After');
  });
});

describe('two instances without Redis (protocol.md §6: revocation honoured within 5 s)', {
  skip: withPostgres,
}, () => {
  let database: { url: string; drop: () => Promise<void> };
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let fx: ProjectFixture;

  before(async () => {
    database = await createThrowawayPostgres();
    cluster = await startCluster({ instances: 2, databaseUrl: database.url, env: NO_FAILURE_LIMITS });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    fx = await httpProjectFixture(a, await superAdminToken(a));
  });
  after(async () => {
    await cluster?.close();
    await database?.drop();
  });

  test('a logout on A: A refuses at once, B within 5 s (bounded poll)', async () => {
    const tokens = await signIn(a, {
      email: fx.admin.email,
      password: fx.admin.password,
      clientId: fx.client.id,
    });
    // Both instances have the session in their cache.
    expectStatus(await me(a, tokens.access_token), 200, 'A before');
    expectStatus(await me(b, tokens.access_token), 200, 'B before');
    const out = await http(a, 'POST', '/oauth2/logout', { token: tokens.access_token, json: {} });
    expectStatus(out, 200, 'logout on A');
    const started = Date.now();
    expectStatus(await me(a, tokens.access_token), 401, 'A, the revoking instance, at once');
    // The database is the source of truth: a refresh on B sees the revocation immediately.
    expectStatus(await refreshGrant(b, tokens.refresh_token as string), 400, 'refresh on B at once');
    let last = 0;
    const honoured = await eventually(
      async () => {
        last = (await me(b, tokens.access_token)).status;
        return last === 401;
      },
      5000,
      100,
    );
    assert.ok(honoured, `B still answered ${last} ${Date.now() - started} ms after the logout`);
  });

  test('a sign-in on A is finished on B without Redis too', async () => {
    const code = await loginCode(a, {
      email: fx.admin.email,
      password: fx.admin.password,
      clientId: fx.client.id,
    });
    expectStatus(await redeemCode(b, code, fx.client.id), 200, 'redeemed at B');
  });
});
