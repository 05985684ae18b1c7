/**
 * security-cases.md §3a (OP-01 … OP-17): the authorization endpoint, against a real listening server.
 * AZ✗ = a 400 page and no redirect; AZ→err(x) = 302 to the validated redirect_uri with `error=x`,
 * the original `state`, and `iss`.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import {
  authorize,
  authorizeParams,
  cookiePair,
  inviteUser,
  NO_FAILURE_LIMITS,
  type PageResponse,
  type Params,
  setClient,
  signInThroughAuthorize,
  submitSignIn,
  token,
} from '../support/oauth-flows.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

const CALLBACK = 'https://app.example.com/callback';
const WITH_QUERY = 'https://app.example.com/cb?x=1';
const LOOPBACK = 'http://127.0.0.1/cb';

/** AZ✗: an error page, never a redirect. */
function assertPageError(response: PageResponse, message?: RegExp): void {
  assert.equal(response.status, 400, response.text);
  assert.equal(response.location, undefined);
  assert.equal(response.headers.get('location'), null);
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
  if (message) assert.match(response.text, message);
}

/** AZ→err(x): 302 to the validated redirect URI with error, the original state and iss. */
function assertRedirectError(
  server: TestServer,
  response: PageResponse,
  redirectUri: string,
  error: string,
  state: string | undefined,
): URL {
  assert.equal(response.status, 302, response.text);
  const location = response.location as URL;
  assert.equal(`${location.origin}${location.pathname}`, redirectUri.split('?')[0]);
  assert.equal(location.searchParams.get('error'), error, location.href);
  assert.equal(location.searchParams.get('state') ?? undefined, state);
  assert.equal(location.searchParams.get('iss'), server.baseUrl);
  assert.equal(location.searchParams.get('code'), null);
  return location;
}

/** The hosted sign-in form was shown: the request was accepted. */
function assertSignInPage(response: PageResponse): void {
  assert.equal(response.status, 200, response.text);
  assert.match(response.text, /<form method="post" action="authorize">/);
}

describe('OP-01 … OP-17: /oauth2/authorize', () => {
  let server: TestServer;
  let fx: ProjectFixture;

  before(async () => {
    server = await startServer('pglite', NO_FAILURE_LIMITS);
    fx = await createProjectFixture(server, { redirectUris: [CALLBACK, WITH_QUERY, LOOPBACK] });
  });
  after(() => server.close());

  const request = (overrides: Params = {}) => authorizeParams(fx, { redirect_uri: CALLBACK, ...overrides });

  test('OP-01 redirect_uri not registered → AZ✗', async () => {
    const { params } = request({ redirect_uri: 'https://evil.example.com/callback' });
    assertPageError(await authorize(server, params), /redirect_uri is not registered/);
    // Also when something else is wrong: the error never travels to an unregistered URI.
    const bad = request({ redirect_uri: 'https://evil.example.com/callback', response_type: 'token' });
    assertPageError(await authorize(server, bad.params));
  });

  test('OP-02 redirect_uri omitted while the client has ≥2 registered → AZ✗', async () => {
    const { params } = request({ redirect_uri: undefined });
    assertPageError(await authorize(server, params), /redirect_uri is required/);
  });

  test('OP-03 query added / query mismatched → AZ✗; registered URI with its query → success', async () => {
    assertPageError(await authorize(server, request({ redirect_uri: `${CALLBACK}?y=1` }).params));
    assertPageError(
      await authorize(server, request({ redirect_uri: 'https://app.example.com/cb?x=2' }).params),
    );
    assertPageError(await authorize(server, request({ redirect_uri: 'https://app.example.com/cb' }).params));
    const ok = request({ redirect_uri: WITH_QUERY });
    const result = await signInThroughAuthorize(server, fx, ok.params);
    assert.equal(result.location.searchParams.get('x'), '1');
    assert.equal(`${result.location.origin}${result.location.pathname}`, 'https://app.example.com/cb');
    assert.equal(result.state, ok.state);
    const redeemed = await token(server, {
      grant_type: 'authorization_code',
      code: result.code as string,
      client_id: fx.client.id,
      redirect_uri: WITH_QUERY,
      code_verifier: ok.pkce.verifier,
    });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
  });

  test('OP-04 near-miss redirect URIs → AZ✗ (exact match, no normalisation)', async () => {
    const nearMisses = [
      `${CALLBACK}/`,
      'https://APP.example.com/callback',
      'https://app.example.com/Callback',
      'https://app.example.com/callback/../callback',
      'https://app.example.com/x/../callback',
      'https://app.example.com/%2e%2e/callback',
      'https://app.example.com/callback%2e%2e',
      'https://app.example.com/callback%252f',
      'https://app.example.com%2fcallback',
      'https://app.example.com.evil.com/callback',
      'https://app.example.com@evil.com/callback',
      `${CALLBACK}#frag`,
      'https://app.example.com:443/callback',
      'https://app.example.com:8443/callback',
      'http://app.example.com/callback',
      'https://\u0430pp.example.com/callback', // Cyrillic а
      'https://xn--pp-8kc.example.com/callback',
      `${CALLBACK}x`,
      ` ${CALLBACK}`,
    ];
    for (const uri of nearMisses) {
      const response = await authorize(server, request({ redirect_uri: uri }).params);
      assert.equal(response.status, 400, `${uri} was accepted`);
      assert.equal(response.headers.get('location'), null, uri);
    }
  });

  test('OP-05 loopback http://127.0.0.1/cb: any port succeeds; query, localhost or another host → AZ✗', async () => {
    const ok = request({ redirect_uri: 'http://127.0.0.1:53124/cb' });
    const result = await signInThroughAuthorize(server, fx, ok.params);
    assert.equal(`${result.location.origin}${result.location.pathname}`, 'http://127.0.0.1:53124/cb');
    const redeemed = await token(server, {
      grant_type: 'authorization_code',
      code: result.code as string,
      redirect_uri: 'http://127.0.0.1:53124/cb',
      code_verifier: ok.pkce.verifier,
    });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    for (const uri of [
      'http://127.0.0.1:53124/cb?x=1',
      'http://localhost:53124/cb',
      'http://localhost/cb',
      'http://127.0.0.2:53124/cb',
      'http://[::1]:53124/cb',
      'https://127.0.0.1:53124/cb',
      'http://127.0.0.1:53124/cb/',
      'http://127.0.0.1:53124@evil.com/cb',
    ]) {
      assertPageError(await authorize(server, request({ redirect_uri: uri }).params));
    }
  });

  test('OP-06 registering javascript:, data:, non-loopback http:, wildcard or fragment redirect URIs → 400', async () => {
    // Registration goes through the admin API; there is no update API for redirect URIs yet.
    for (const uri of [
      'javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'http://app.example.com/callback',
      'https://*.example.com/callback',
      'https://app.example.com/*',
      'https://app.example.com/callback#frag',
      '/relative/callback',
      'file:///etc/passwd',
    ]) {
      const response = await call(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
        token: fx.admin.token,
        body: { name: 'bad', redirectUris: [uri] },
      });
      assert.equal(response.status, 400, `${uri}: ${JSON.stringify(response.body)}`);
      assert.equal(response.body.resourceType, 'OperationOutcome');
      const legacy = await call(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
        token: fx.admin.token,
        body: { name: 'bad', redirectUri: uri },
      });
      assert.equal(legacy.status, 400, `${uri} (legacy redirectUri)`);
    }
  });

  test('OP-07 valid client and redirect_uri, invalid scope or parameter → AZ→err with state and iss', async () => {
    const badScope = request({ scope: 'no_such_scope' });
    assertRedirectError(
      server,
      await authorize(server, badScope.params),
      CALLBACK,
      'invalid_scope',
      badScope.state,
    );
    const badParam = request({ nonce: 'n'.repeat(5000) });
    assertRedirectError(
      server,
      await authorize(server, badParam.params),
      CALLBACK,
      'invalid_request',
      badParam.state,
    );
  });

  test('OP-08 response_type missing → invalid_request; token, id_token token, code token → unsupported_response_type', async () => {
    const missing = request({ response_type: undefined });
    assertRedirectError(
      server,
      await authorize(server, missing.params),
      CALLBACK,
      'invalid_request',
      missing.state,
    );
    for (const responseType of ['token', 'id_token token', 'code token', 'code id_token', 'id_token']) {
      const r = request({ response_type: responseType });
      assertRedirectError(
        server,
        await authorize(server, r.params),
        CALLBACK,
        'unsupported_response_type',
        r.state,
      );
    }
  });

  test('OP-09 unknown parameter, POST instead of GET, reordered scope, no nonce → all succeed', async () => {
    const variants: { overrides: Params; method: 'GET' | 'POST' }[] = [
      { overrides: { extra: 'foobar' }, method: 'GET' },
      { overrides: {}, method: 'POST' },
      { overrides: { scope: 'offline_access openid' }, method: 'GET' },
      { overrides: { nonce: undefined }, method: 'GET' },
    ];
    for (const { overrides, method } of variants) {
      const r = request(overrides);
      const result = await signInThroughAuthorize(server, fx, r.params, { method });
      assert.equal(result.state, r.state);
      const redeemed = await token(server, {
        grant_type: 'authorization_code',
        code: result.code as string,
        redirect_uri: CALLBACK,
        code_verifier: r.pkce.verifier,
      });
      assert.equal(
        redeemed.status,
        200,
        `${JSON.stringify(overrides)} ${method}: ${JSON.stringify(redeemed.body)}`,
      );
      assert.equal(typeof redeemed.body.id_token, 'string');
    }
  });

  test('OP-10 duplicate redirect_uri → AZ✗; duplicate state or code_challenge → invalid_request', async () => {
    assertPageError(await authorize(server, request({ redirect_uri: [CALLBACK, CALLBACK] }).params));
    assertPageError(await authorize(server, request({ redirect_uri: [CALLBACK, WITH_QUERY] }).params));
    assertPageError(await authorize(server, request({ client_id: [fx.client.id, fx.client.id] }).params));
    // Two states: neither is echoed (which one would be the app's?).
    const twoStates = request({ state: ['a', 'b'] });
    assertRedirectError(
      server,
      await authorize(server, twoStates.params),
      CALLBACK,
      'invalid_request',
      undefined,
    );
    const r = request();
    const twoChallenges = { ...r.params, code_challenge: [String(r.params.code_challenge), 'x'.repeat(43)] };
    assertRedirectError(server, await authorize(server, twoChallenges), CALLBACK, 'invalid_request', r.state);
  });

  test('OP-11 request= / request_uri= → request_not_supported / request_uri_not_supported; never fetched', async () => {
    // A loopback listener stands in for the request_uri host (no traffic leaves the machine).
    let hits = 0;
    const listener: Server = createServer((_req, res) => {
      hits++;
      res.end('eyJhbGciOiJub25lIn0.e30.');
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      const port = (listener.address() as AddressInfo).port;
      const withRequest = request({ request: 'eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.' });
      assertRedirectError(
        server,
        await authorize(server, withRequest.params),
        CALLBACK,
        'request_not_supported',
        withRequest.state,
      );
      const withUri = request({ request_uri: `http://127.0.0.1:${port}/request.jwt` });
      assertRedirectError(
        server,
        await authorize(server, withUri.params),
        CALLBACK,
        'request_uri_not_supported',
        withUri.state,
      );
      assert.equal(hits, 0);
    } finally {
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  test('OP-12 no code_challenge → AZ→err(invalid_request) "code challenge required"; control: S256 succeeds', async () => {
    const r = request({ code_challenge: undefined, code_challenge_method: undefined });
    const location = assertRedirectError(
      server,
      await authorize(server, r.params),
      CALLBACK,
      'invalid_request',
      r.state,
    );
    assert.match(location.searchParams.get('error_description') ?? '', /code_challenge is required/);
    // Same through the Medplum SDK's /auth/login.
    const login = await call(server, 'POST', '/auth/login', {
      body: { email: fx.admin.email, password: fx.admin.password, clientId: fx.client.id },
    });
    assert.equal(login.status, 400);
    assert.match(login.body.issue[0].details.text, /code_challenge is required/);
    assertSignInPage(await authorize(server, request().params));
  });

  test('OP-13 code_challenge_method=plain, or a challenge without a method → AZ→err(invalid_request)', async () => {
    const plain = request({ code_challenge_method: 'plain' });
    assertRedirectError(
      server,
      await authorize(server, plain.params),
      CALLBACK,
      'invalid_request',
      plain.state,
    );
    const omitted = request({ code_challenge_method: undefined });
    assertRedirectError(
      server,
      await authorize(server, omitted.params),
      CALLBACK,
      'invalid_request',
      omitted.state,
    );
  });

  test('OP-14 code_challenge_method=S512; a challenge that is not 43 base64url characters → AZ→err(invalid_request)', async () => {
    const challenge = String(request().params.code_challenge);
    for (const overrides of [
      { code_challenge_method: 'S512' },
      { code_challenge_method: 's256' },
      { code_challenge: challenge.slice(0, 42) },
      { code_challenge: `${challenge}A` },
      { code_challenge: `${challenge.slice(0, 42)}+` },
      { code_challenge: `${challenge.slice(0, 42)}=` },
      { code_challenge: 'a'.repeat(128) },
    ]) {
      const r = request(overrides);
      assertRedirectError(server, await authorize(server, r.params), CALLBACK, 'invalid_request', r.state);
    }
  });

  test('OP-15 every authorization response, success and error, carries iss = discovery issuer, byte-exact', async () => {
    const discovery = await call(server, 'GET', '/.well-known/openid-configuration');
    const issuer = discovery.body.issuer as string;
    const success = await signInThroughAuthorize(server, fx, request().params);
    assert.equal(success.iss, issuer);
    assert.equal(success.location.searchParams.getAll('iss').length, 1);
    const error = await authorize(server, request({ scope: 'nothing_known' }).params);
    assert.equal(error.location?.searchParams.get('iss'), issuer);
    const loopback = await signInThroughAuthorize(
      server,
      fx,
      request({ redirect_uri: 'http://127.0.0.1:9/cb' }).params,
    );
    assert.equal(loopback.iss, issuer);
  });

  test('OP-16 prompt=none with no session → AZ→err(login_required)', async () => {
    const r = request({ prompt: 'none' });
    assertRedirectError(server, await authorize(server, r.params), CALLBACK, 'login_required', r.state);
  });

  test('OP-17 sign-in, chooser and error pages: X-Frame-Options DENY and frame-ancestors none', async () => {
    const assertNotFramable = (response: PageResponse) => {
      assert.equal(response.headers.get('x-frame-options'), 'DENY');
      assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(response.headers.get('cache-control'), 'no-store');
    };
    const signIn = await authorize(server, request().params);
    assertSignInPage(signIn);
    assertNotFramable(signIn);
    assertNotFramable(await authorize(server, request({ redirect_uri: 'https://evil.example.com/' }).params));

    // A user with two memberships in the client's project gets the chooser (never an implicit first).
    const email = `two.${Date.now()}@example.com`;
    const first = await inviteUser(server, fx, { email, firstName: 'First' });
    await inviteUser(server, fx, { email, password: first.password, firstName: 'Second' });
    const form = await authorize(server, request().params);
    const chooser = await submitSignIn(server, form, { email, password: first.password });
    assert.equal(chooser.status, 200, chooser.text);
    assert.match(chooser.text, /Choose a profile/);
    assertNotFramable(chooser);
  });
});

/**
 * OP-15 for the redirect that ends the external-IdP flow (§3.1 JSON state and §3.2 opaque state).
 * A userinfo-only provider on 127.0.0.1 (allowed through ALLOW_PRIVATE_IDP_URLS, so the SSRF guard
 * stays on for everything else) stands in for the IdP; the test plays the browser.
 */
describe('OP-15 iss on the redirect that ends the external-IdP flow', () => {
  let server: TestServer;
  let fx: ProjectFixture;
  let idp: Server;
  let tokenCalls = 0;

  before(async () => {
    idp = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/token')) {
        tokenCalls++;
        res.end(JSON.stringify({ access_token: 'upstream-at', token_type: 'Bearer', expires_in: 60 }));
      } else if (req.url?.startsWith('/userinfo')) {
        res.end(JSON.stringify({ sub: 'ext-sub-1', email: fx.admin.email, email_verified: true }));
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    server = await startServer('pglite', { ...NO_FAILURE_LIMITS, ALLOW_PRIVATE_IDP_URLS: '127.0.0.1' });
    fx = await createProjectFixture(server, { redirectUris: [CALLBACK] });
    // No admin API sets a client's identity provider yet: a direct repository update (oauth-flows.ts).
    await setClient(server, fx.client.id, {
      identityProvider: {
        authorizeUrl: `${origin}/authorize`,
        tokenUrl: `${origin}/token`,
        userInfoUrl: `${origin}/userinfo`,
        clientId: 'fedhir-at-idp',
      },
    });
  });
  after(async () => {
    await server.close();
    await new Promise((resolve) => idp.close(resolve));
  });

  test('OP-15 external flow: §3.2 and §3.1 redirects to the app carry iss = discovery issuer, byte-exact', async () => {
    const issuer = (await call(server, 'GET', '/.well-known/openid-configuration')).body.issuer as string;
    const { params, pkce, state } = authorizeParams(fx, { redirect_uri: CALLBACK });
    const start = await fetch(
      new URL(`auth/external/start?${new URLSearchParams(params as Record<string, string>)}`, server.baseUrl),
      { redirect: 'manual' },
    );
    assert.equal(start.status, 302, await start.text());
    const toIdp = new URL(start.headers.get('location') as string);
    const cookie = cookiePair(start.headers, 'fedhir_ext') as string;
    const callback = new URL('auth/external', server.baseUrl);
    callback.search = new URLSearchParams({
      code: 'upstream-code',
      state: toIdp.searchParams.get('state') as string,
    }).toString();
    const back = await fetch(callback, { redirect: 'manual', headers: { cookie } });
    assert.equal(back.status, 302, await back.text());
    const app = new URL(back.headers.get('location') as string);
    assert.equal(`${app.origin}${app.pathname}`, CALLBACK);
    assert.equal(app.searchParams.get('iss'), issuer);
    assert.equal(app.searchParams.get('state'), state);
    // §3.2 is /oauth2/authorize with the provider chosen up front: the code is bound to redirect_uri.
    const redeemed = await token(server, {
      grant_type: 'authorization_code',
      code: app.searchParams.get('code') as string,
      code_verifier: pkce.verifier,
      redirect_uri: CALLBACK,
    });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));

    // §3.1 (the Medplum SDK's JSON state).
    const legacy = new URL('auth/external', server.baseUrl);
    legacy.search = new URLSearchParams({
      code: 'upstream-code-2',
      state: JSON.stringify({
        clientId: fx.client.id,
        projectId: fx.project.id,
        redirectUri: CALLBACK,
        codeChallenge: pkce.challenge,
        codeChallengeMethod: 'S256',
      }),
    }).toString();
    const legacyBack = await fetch(legacy, { redirect: 'manual' });
    assert.equal(legacyBack.status, 302, await legacyBack.text());
    const legacyApp = new URL(legacyBack.headers.get('location') as string);
    assert.equal(legacyApp.searchParams.get('iss'), issuer);
    assert.equal(typeof legacyApp.searchParams.get('code'), 'string');
    assert.equal(tokenCalls, 2);
  });
});
