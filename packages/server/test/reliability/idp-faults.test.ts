/**
 * An identity provider that misbehaves (protocol.md §4 "Errors", §7.6): one that hangs, answers 500,
 * 429, HTML, a 26 MB body, or a redirect costs fedhir a bounded, clear OAuth error — 503
 * `temporarily_unavailable` for an outage, 429 for throttling, 400 `invalid_request` for an answer that
 * is not what was asked — never a 500, never the upstream body, never a hang; and a burst of 200
 * such exchanges (50 in flight) leaves the server responsive: /healthcheck answers throughout and a
 * sound exchange succeeds afterwards. The same faults at the token endpoint of a §3.1 sign-in make
 * the callback a 400 page (CB✗).
 *
 * The server is a real process (`src/main.ts`, embedded engine); the providers are loopback servers
 * in this process, reachable only because ALLOW_PRIVATE_IDP_URLS lists 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertCleanBody,
  type Cluster,
  type ClusterNode,
  expectStatus,
  type HttpResult,
  http,
  httpInvite,
  httpProjectFixture,
  httpUpdateClient,
  startCluster,
  superAdminToken,
} from '../support/cluster.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from '../support/exchange-fedhir.ts';
import {
  EXT_CLIENT_ID,
  type ExchangeIdp,
  type Fault,
  type FaultIdp,
  startExchangeIdp,
  startFaultIdp,
} from '../support/exchange-idp.ts';
import type { ProjectFixture } from '../support/fixtures.ts';
import { NO_FAILURE_LIMITS, pkcePair } from '../support/oauth-flows.ts';

/** Generous bound on one faulty exchange: the 5 s outbound deadline plus scheduling under load. */
const FAULT_BOUND_MS = 12_000;

interface Case {
  name: string;
  fault: (idp: FaultIdp, follow: string) => Fault;
  status: number;
  error: string;
  retryAfter?: string;
}

const CASES: Case[] = [
  { name: 'hangs', fault: () => ({ kind: 'hang' }), status: 503, error: 'temporarily_unavailable' },
  {
    name: 'answers 500',
    fault: () => ({ kind: 'status', status: 500 }),
    status: 503,
    error: 'temporarily_unavailable',
  },
  {
    name: 'answers 429 with Retry-After: 7',
    fault: () => ({ kind: 'status', status: 429, retryAfter: '7' }),
    status: 429,
    error: 'invalid_request',
    retryAfter: '7',
  },
  {
    name: 'answers HTML',
    fault: (idp) => ({
      kind: 'body',
      contentType: 'text/html',
      body: `<html><body>Login to continue ${idp.marker}</body></html>`,
    }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'answers a 26 MB body',
    fault: () => ({ kind: 'large', bytes: 26 * 1024 * 1024, chunked: false }),
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'answers a redirect (to claims that would be accepted if it were followed)',
    fault: (_idp, follow) => ({ kind: 'redirect', location: follow }),
    status: 400,
    error: 'invalid_request',
  },
];

function assertOAuthError(response: HttpResult, c: Case, context: string): void {
  assert.equal(response.status, c.status, `${context}: ${response.text.slice(0, 300)}`);
  assert.equal(response.body?.error, c.error, `${context}: ${response.text.slice(0, 300)}`);
  assert.equal(typeof response.body?.error_description, 'string', context);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, context);
  assert.equal(response.headers.get('cache-control'), 'no-store', context);
  if (c.status === 503)
    assert.ok(Number(response.headers.get('retry-after')) >= 1, `${context}: Retry-After`);
  if (c.retryAfter)
    assert.equal(response.headers.get('retry-after'), c.retryAfter, `${context}: Retry-After`);
  assertCleanBody(response.text, context);
}

describe('identity-provider faults', () => {
  let cluster: Cluster;
  let node: ClusterNode;
  let fx: ProjectFixture;
  let fault: FaultIdp;
  let real: ExchangeIdp;
  let faultyClient: string;
  let soundClient: string;
  let email: string;
  /** A URL on the fault server answering claims of the invited user: what a followed redirect would get. */
  let followUrl: string;

  async function newClient(name: string, identityProvider: Record<string, unknown>): Promise<string> {
    const created = await http(node, 'POST', `/admin/projects/${fx.project.id}/client`, {
      token: await superAdminToken(node),
      json: { name, redirectUris: ['https://app.example.com/callback'] },
    });
    expectStatus(created, 201, `client ${name}`);
    expectStatus(
      await httpUpdateClient(node, fx.admin.token, created.body.id, { identityProvider }),
      200,
      name,
    );
    return created.body.id;
  }

  function exchange(clientId: string, subjectToken: string) {
    return http(node, 'POST', '/oauth2/token', {
      form: {
        grant_type: TOKEN_EXCHANGE,
        subject_token_type: ACCESS_TOKEN_TYPE,
        client_id: clientId,
        subject_token: subjectToken,
      },
      timeoutMs: FAULT_BOUND_MS,
    });
  }

  before(async () => {
    fault = await startFaultIdp();
    real = await startExchangeIdp();
    cluster = await startCluster({ env: { ...NO_FAILURE_LIMITS, ALLOW_PRIVATE_IDP_URLS: '127.0.0.1' } });
    node = cluster.nodes[0] as ClusterNode;
    fx = await httpProjectFixture(node, await superAdminToken(node));
    email = `faults.${Date.now()}@example.com`;
    await httpInvite(node, fx.admin.token, fx.project.id, { email });
    followUrl = fault.route({
      kind: 'json',
      value: { sub: 'followed', email, email_verified: true, given_name: 'F', family_name: 'Ollowed' },
    });
    faultyClient = await newClient('faulty provider', {
      userInfoUrl: fault.userinfoUrl,
      clientId: 'fault-ext',
    });
    soundClient = await newClient('sound provider', {
      userInfoUrl: real.userinfoUrl,
      clientId: EXT_CLIENT_ID,
    });
  });
  after(async () => {
    await cluster?.close();
    await fault?.close();
    await real?.close();
  });

  test('control: the claims behind the redirect are accepted when the provider answers them directly', async () => {
    const direct = await newClient('direct claims', { userInfoUrl: followUrl, clientId: 'fault-ext' });
    expectStatus(await exchange(direct, 'any-token'), 200, 'direct');
  });

  for (const c of CASES) {
    test(`token exchange: a provider that ${c.name} → ${c.status} ${c.error}, bounded, no upstream body`, async () => {
      const calls = fault.calls;
      // The RFC 8693 grant and the legacy door (POST /auth/exchange) together: the same status, the
      // latter as an OperationOutcome.
      const [response, legacy] = await Promise.all([
        exchange(faultyClient, fault.register(c.fault(fault, followUrl))),
        http(node, 'POST', '/auth/exchange', {
          json: { externalAccessToken: fault.register(c.fault(fault, followUrl)), clientId: faultyClient },
          timeoutMs: FAULT_BOUND_MS,
        }),
      ]);
      assertOAuthError(response, c, 'RFC 8693 grant');
      assert.ok(!response.text.includes(fault.marker), 'the upstream body is not echoed');
      // Redirects are not followed: the provider saw the two requests, never the redirect's target.
      if (c.name.startsWith('answers a redirect'))
        assert.equal(fault.calls, calls + 2, 'redirect not followed');
      assert.equal(legacy.status, c.status, `/auth/exchange: ${legacy.text.slice(0, 300)}`);
      assertCleanBody(legacy.text, '/auth/exchange');
      assert.ok(!legacy.text.includes(fault.marker), 'the upstream body is not echoed');
    });
  }

  test('a burst of 200 faulty exchanges (50 in flight): every answer as specified, /healthcheck answers throughout, a sound exchange works after', async () => {
    const started = Date.now();
    let done = false;
    const health: number[] = [];
    const healthErrors: string[] = [];
    const poller = (async () => {
      while (!done) {
        try {
          const r = await http(node, 'GET', '/healthcheck', { timeoutMs: 3000 });
          health.push(r.status);
        } catch (err) {
          healthErrors.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const total = 200;
    const results: { c: Case; response?: HttpResult; error?: string }[] = [];
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const c = CASES[next++ % CASES.length] as Case;
        try {
          results.push({
            c,
            response: await exchange(faultyClient, fault.register(c.fault(fault, followUrl))),
          });
        } catch (err) {
          results.push({ c, error: (err as Error).message });
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    done = true;
    await poller;

    assert.equal(results.length, total);
    const failed = results.filter((r) => r.error);
    assert.deepEqual(
      failed.map((r) => `${r.c.name}: ${r.error}`),
      [],
      'every request answered within the bound (no hang)',
    );
    for (const r of results) assertOAuthError(r.response as HttpResult, r.c, `burst, ${r.c.name}`);
    assert.deepEqual(healthErrors, [], '/healthcheck never timed out during the burst');
    assert.ok(health.length >= 3, `the health poller ran (${health.length} probes)`);
    assert.ok(
      health.every((s) => s === 200),
      `/healthcheck answered 200 throughout: ${health.join(',')}`,
    );

    // Still serving: an exchange against a sound provider succeeds.
    const sub = real.account(email);
    const ok = await exchange(soundClient, await real.accessToken(sub));
    expectStatus(ok, 200, `sound exchange after the burst (${Date.now() - started} ms in)`);
  });

  test('the same faults at the token endpoint of a §3.1 sign-in: the callback answers a 400 page, bounded, no upstream body', async () => {
    for (const c of CASES) {
      const clientId = await newClient(`callback ${c.name}`, {
        authorizeUrl: `${fault.origin}/authorize`,
        tokenUrl: fault.route(c.fault(fault, followUrl)),
        userInfoUrl: fault.userinfoUrl,
        clientId: 'fault-ext',
        clientSecret: 'fault-ext-secret',
      });
      const state = JSON.stringify({
        clientId,
        projectId: fx.project.id,
        redirectUri: 'https://app.example.com/callback',
        codeChallenge: pkcePair().challenge,
        codeChallengeMethod: 'S256',
      });
      const url = `/auth/external?${new URLSearchParams({ code: 'upstream-code', state })}`;
      const response = await http(node, 'GET', url, { timeoutMs: FAULT_BOUND_MS });
      assert.equal(response.status, 400, `${c.name}: ${response.text.slice(0, 300)}`);
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/, c.name);
      assert.equal(response.headers.get('location'), null, `${c.name}: no redirect to the app`);
      assert.ok(!response.text.includes(fault.marker), `${c.name}: the upstream body is not echoed`);
      assertCleanBody(response.text, c.name);
    }
  });
});
