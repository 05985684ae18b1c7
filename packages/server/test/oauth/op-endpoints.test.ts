/**
 * security-cases.md §3e (OP-41 … OP-49): discovery, JWKS, signing-key rotation, userinfo,
 * introspection, revocation and CORS, against a real listening server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { basic, createProjectFixture, type ProjectFixture, postForm } from '../support/fixtures.ts';
import {
  assertT,
  assertT401,
  authorize,
  authorizeParams,
  cookiePair,
  createClient,
  introspect,
  jwtParts,
  NO_FAILURE_LIMITS,
  passwordTokens,
  refresh,
  setClient,
  token,
  userinfo,
} from '../support/oauth-flows.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ORIGIN = 'https://app.example.com';

describe('OP-41 … OP-49: discovery, JWKS, userinfo, introspection, revocation, CORS', () => {
  let server: TestServer;
  let fx: ProjectFixture;

  before(async () => {
    server = await startServer('pglite', NO_FAILURE_LIMITS);
    fx = await createProjectFixture(server);
  });
  after(() => server.close());

  const signIn = (options: Parameters<typeof passwordTokens>[2] = {}) =>
    passwordTokens(server, fx, { scope: 'openid profile email offline_access', ...options });
  const jwks = async () =>
    (await call(server, 'GET', '/.well-known/jwks.json')).body as JSONWebKeySet & {
      keys: Record<string, unknown>[];
    };

  test('OP-41 discovery: issuer = every iss, S256 only, iss parameter, and only what is implemented', async () => {
    const doc = (await call(server, 'GET', '/.well-known/openid-configuration')).body;
    const oauthDoc = (await call(server, 'GET', '/.well-known/oauth-authorization-server')).body;
    assert.deepEqual(oauthDoc, doc);
    const issuer = doc.issuer as string;
    assert.equal(issuer, server.baseUrl);
    const url = new URL(issuer);
    assert.equal(url.search, '');
    assert.equal(url.hash, '');
    assert.equal(url.href, issuer);
    assert.deepEqual(doc.code_challenge_methods_supported, ['S256']);
    assert.equal(doc.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(doc.response_types_supported, ['code']);
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ['RS256', 'ES256']);
    assert.deepEqual(doc.token_endpoint_auth_methods_supported, [
      'client_secret_basic',
      'client_secret_post',
      'none',
    ]);
    assert.equal(doc.request_parameter_supported, false);
    assert.equal(doc.request_uri_parameter_supported, false);

    // iss everywhere: access token, ID token, the authorization response.
    const tokens = await signIn();
    assert.equal(jwtParts(tokens.access_token).payload.iss, issuer);
    assert.equal(jwtParts(tokens.id_token as string).payload.iss, issuer);
    const cc = await token(
      server,
      { grant_type: 'client_credentials' },
      { authorization: basic(fx.client.id, fx.client.secret) },
    );
    assert.equal(jwtParts(cc.body.access_token as string).payload.iss, issuer);
    const error = await authorize(server, authorizeParams(fx, { prompt: 'none' }).params);
    assert.equal(error.location?.searchParams.get('iss'), issuer);

    // Grants: advertised ⇔ the token endpoint knows it (token exchange is listed once it lands).
    const grants = doc.grant_types_supported as string[];
    for (const grant of ['authorization_code', 'refresh_token', 'client_credentials']) {
      assert.ok(grants.includes(grant), grant);
    }
    for (const grant of [...grants, TOKEN_EXCHANGE, 'password', 'implicit']) {
      const answer = await token(server, { grant_type: grant, client_id: fx.client.id });
      assert.equal(answer.body.error === 'unsupported_grant_type', !grants.includes(grant), grant);
    }
    // Every advertised endpoint exists.
    for (const name of [
      'authorization_endpoint',
      'token_endpoint',
      'userinfo_endpoint',
      'jwks_uri',
      'introspection_endpoint',
      'revocation_endpoint',
      'end_session_endpoint',
    ]) {
      const endpoint = doc[name] as string;
      assert.ok(endpoint.startsWith(issuer), name);
      const method = ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint'].includes(name)
        ? 'POST'
        : 'GET';
      const response = await fetch(endpoint, { method, redirect: 'manual' });
      assert.notEqual(response.status, 404, name);
    }
  });

  test('OP-42 JWKS has public members only, kid and use/alg on every key; ID tokens RS256 (or the registered ES256)', async () => {
    const set = await jwks();
    assert.ok(set.keys.length >= 2);
    for (const key of set.keys) {
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'])
        assert.equal(key[secret], undefined, secret);
      assert.equal(typeof key.kid, 'string');
      assert.equal(key.use, 'sig');
      assert.ok(['RS256', 'ES256'].includes(key.alg as string));
    }
    const local = createLocalJWKSet(set);
    const tokens = await signIn();
    assert.equal(jwtParts(tokens.id_token as string).header.alg, 'RS256');
    await jwtVerify(tokens.id_token as string, local, {
      issuer: server.baseUrl,
      audience: fx.client.id,
      algorithms: ['RS256'],
    });
    const at = await jwtVerify(tokens.access_token, local, {
      issuer: server.baseUrl,
      audience: server.baseUrl,
      typ: 'at+jwt',
    });
    assert.equal(at.protectedHeader.alg, 'ES256');

    const es = await createClient(server, fx, { name: 'ES256 ID tokens' });
    await setClient(server, es.id, { idTokenSignedResponseAlg: 'ES256' });
    const esTokens = await signIn({ clientId: es.id });
    const esId = await jwtVerify(esTokens.id_token as string, local, {
      audience: es.id,
      algorithms: ['ES256'],
    });
    assert.equal(esId.protectedHeader.alg, 'ES256');
    for (const jwt of [tokens.id_token, tokens.access_token, esTokens.id_token]) {
      assert.notEqual(String(jwtParts(jwt as string).header.alg).toLowerCase(), 'none');
    }
  });

  test('OP-43 key rotation: the new key is published, tokens signed before still verify and work', async () => {
    const before = await signIn();
    const oldAtKid = jwtParts(before.access_token).header.kid;
    const oldIdKid = jwtParts(before.id_token as string).header.kid;
    // Rotation is an operator action without an HTTP API: the server's own KeyStore does it.
    await server.services.keys.rotate('ES256');
    await server.services.keys.rotate('RS256');
    const kids = (await jwks()).keys.map((k) => k.kid);
    assert.ok(
      kids.includes(oldAtKid as string) && kids.includes(oldIdKid as string),
      'old keys still published',
    );
    const afterRotation = await signIn();
    const newAtKid = jwtParts(afterRotation.access_token).header.kid;
    const newIdKid = jwtParts(afterRotation.id_token as string).header.kid;
    assert.notEqual(newAtKid, oldAtKid);
    assert.notEqual(newIdKid, oldIdKid);
    assert.ok(kids.includes(newAtKid as string) && kids.includes(newIdKid as string), 'new keys published');
    const local = createLocalJWKSet(await jwks());
    await jwtVerify(before.id_token as string, local, { audience: fx.client.id });
    await jwtVerify(afterRotation.id_token as string, local, { audience: fx.client.id });
    assert.equal((await userinfo(server, before.access_token)).status, 200);
    assert.equal((await call(server, 'GET', '/auth/me', { token: before.access_token })).status, 200);
    assert.equal((await userinfo(server, afterRotation.access_token)).status, 200);
  });

  test('OP-44 userinfo by GET with Bearer, POST with header, POST with body → 200, sub = ID token sub', async () => {
    const tokens = await signIn();
    const sub = jwtParts(tokens.id_token as string).payload.sub;
    const get = await userinfo(server, tokens.access_token);
    const postHeader = await call(server, 'POST', '/oauth2/userinfo', { token: tokens.access_token });
    const postBody = await postForm(server, '/oauth2/userinfo', { access_token: tokens.access_token });
    for (const response of [get, postHeader, postBody]) {
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.sub, sub);
      assert.equal(response.body.email, fx.admin.email);
    }
  });

  test('OP-45 userinfo refuses: no token, expired, revoked, ID token, RT, ?access_token=; insufficient scope → 403', async () => {
    const none = await call(server, 'GET', '/oauth2/userinfo');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');

    const tokens = await signIn();
    const claims = jwtParts(tokens.access_token).payload;
    // An access token 1 s past its exp, minted by the server's own signer (a JWT cannot be aged).
    const expired = await server.services.tokens.signAccessToken(
      { sub: String(claims.sub), login_id: String(claims.login_id), scope: String(claims.scope) },
      -1,
    );
    const revoked = await signIn();
    await call(server, 'POST', '/oauth2/logout', { token: revoked.access_token, body: {} });
    for (const [name, bearer] of [
      ['expired', expired.token],
      ['revoked', revoked.access_token],
      ['ID token', tokens.id_token as string],
      ['refresh token', tokens.refresh_token as string],
      ['garbage', 'abc.def.ghi'],
    ] as const) {
      const response = await userinfo(server, bearer);
      assert.equal(response.status, 401, name);
      assert.equal(response.headers.get('www-authenticate'), 'Bearer error="invalid_token"', name);
      assert.equal(response.body.error, 'invalid_token', name);
    }
    const inQuery = await call(server, 'GET', `/oauth2/userinfo?access_token=${tokens.access_token}`);
    assert.equal(inQuery.status, 401);
    assert.equal(inQuery.headers.get('www-authenticate'), 'Bearer error="invalid_token"');

    const noOpenid = await signIn({ scope: 'profile offline_access' });
    const forbidden = await userinfo(server, noOpenid.access_token);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error, 'insufficient_scope');
    assert.match(forbidden.headers.get('www-authenticate') ?? '', /^Bearer error="insufficient_scope"/);
  });

  test('OP-46 introspection: unauthenticated → 401; expired, revoked, garbage or another client’s token → exactly {active:false}', async () => {
    const tokens = await signIn();
    assert.equal((await introspect(server, fx.client, tokens.access_token)).body.active, true);
    assertT401(await postForm(server, '/oauth2/introspect', { token: tokens.access_token }), false);
    assertT401(
      await postForm(server, '/oauth2/introspect', { token: tokens.access_token, client_id: fx.client.id }),
      false,
    );
    assertT401(
      await postForm(
        server,
        '/oauth2/introspect',
        { token: tokens.access_token },
        { authorization: basic(fx.client.id, 'x') },
      ),
      true,
    );

    const claims = jwtParts(tokens.access_token).payload;
    const expired = await server.services.tokens.signAccessToken(
      {
        sub: String(claims.sub),
        login_id: String(claims.login_id),
        client_id: fx.client.id,
        scope: String(claims.scope),
      },
      -1,
    );
    const other = await createClient(server, fx);
    const revoked = await signIn();
    await postForm(server, '/oauth2/revoke', {
      token: revoked.refresh_token as string,
      client_id: fx.client.id,
    });
    const cases: [string, { id: string; secret: string }, string][] = [
      ['expired', fx.client, expired.token],
      ['revoked AT', fx.client, revoked.access_token],
      ['revoked RT', fx.client, revoked.refresh_token as string],
      ['garbage', fx.client, 'garbage'],
      ['garbage JWT', fx.client, 'eyJhbGciOiJub25lIn0.e30.'],
      ['another client’s AT', other, tokens.access_token],
      ['another client’s RT', other, tokens.refresh_token as string],
    ];
    for (const [name, client, value] of cases) {
      const response = await introspect(server, client, value);
      assert.equal(response.status, 200, name);
      assert.deepEqual(response.body, { active: false }, name);
      assert.equal(response.headers.get('cache-control'), 'no-store', name);
    }
  });

  test('OP-47 revoking a valid RT: 200, later refresh T(invalid_grant), derived ATs revoked; unknown token or wrong hint → 200', async () => {
    const tokens = await signIn();
    const revoked = await postForm(
      server,
      '/oauth2/revoke',
      { token: tokens.refresh_token as string, token_type_hint: 'refresh_token' },
      { authorization: basic(fx.client.id, fx.client.secret) },
    );
    assert.equal(revoked.status, 200);
    assertT(
      await refresh(server, tokens.refresh_token as string, { client_id: fx.client.id }),
      'invalid_grant',
    );
    assert.equal((await userinfo(server, tokens.access_token)).status, 401);

    const unknown = await postForm(
      server,
      '/oauth2/revoke',
      { token: 'never-issued' },
      { authorization: basic(fx.client.id, fx.client.secret) },
    );
    assert.equal(unknown.status, 200);
    // A wrong hint: the server extends its search (RFC 7009 §2.1) and still revokes.
    const hinted = await signIn();
    const wrongHint = await postForm(
      server,
      '/oauth2/revoke',
      { token: hinted.refresh_token as string, token_type_hint: 'access_token' },
      { authorization: basic(fx.client.id, fx.client.secret) },
    );
    assert.equal(wrongHint.status, 200);
    assertT(
      await refresh(server, hinted.refresh_token as string, { client_id: fx.client.id }),
      'invalid_grant',
    );
    const oddHint = await signIn();
    assert.equal(
      (
        await postForm(server, '/oauth2/revoke', {
          token: oddHint.access_token,
          token_type_hint: 'no_such_hint',
          client_id: fx.client.id,
        })
      ).status,
      200,
    );
    assert.equal((await userinfo(server, oddHint.access_token)).status, 401);
  });

  test('OP-48 revoking another client’s token leaves it valid; a confidential client unauthenticated → 401 invalid_client', async () => {
    const tokens = await signIn();
    const other = await createClient(server, fx);
    const foreign = await postForm(
      server,
      '/oauth2/revoke',
      { token: tokens.refresh_token as string },
      { authorization: basic(other.id, other.secret) },
    );
    assert.equal(foreign.status, 200); // documented no-op (protocol.md §2)
    assert.equal((await userinfo(server, tokens.access_token)).status, 200);

    const confidential = await createClient(server, fx, { name: 'confidential' });
    await setClient(server, confidential.id, { requireClientAuth: true });
    const theirs = await signIn({ clientId: confidential.id, clientSecret: confidential.secret });
    assertT401(
      await postForm(server, '/oauth2/revoke', { token: theirs.access_token, client_id: confidential.id }),
      false,
    );
    assertT401(await postForm(server, '/oauth2/revoke', { token: theirs.access_token }), false);
    assertT401(
      await postForm(
        server,
        '/oauth2/revoke',
        { token: theirs.access_token },
        { authorization: basic(confidential.id, 'x') },
      ),
      true,
    );
    assert.equal((await userinfo(server, theirs.access_token)).status, 200);

    // A client that does not require authentication may revoke with client_id alone (protocol.md §2).
    const publicRevoke = await postForm(server, '/oauth2/revoke', {
      token: tokens.access_token,
      client_id: fx.client.id,
    });
    assert.equal(publicRevoke.status, 200);
    assert.equal((await userinfo(server, tokens.access_token)).status, 401);
  });

  test('OP-49 CORS details: Vary: Origin without an Origin too; a preflight states methods and max-age; an OPTIONS that is no preflight is a 404 in its surface’s format', async () => {
    const plain = await fetch(new URL('/.well-known/openid-configuration', server.baseUrl));
    assert.match(plain.headers.get('vary') ?? '', /\bOrigin\b/i, 'caches must key on Origin');
    assert.equal(plain.headers.get('access-control-allow-origin'), null);

    const preflight = await fetch(new URL('/fhir/R4/Patient', server.baseUrl), {
      method: 'OPTIONS',
      headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' },
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /\bPUT\b/);
    assert.equal(preflight.headers.get('access-control-max-age'), '3600');
    assert.equal(await preflight.text(), '');

    // No Access-Control-Request-Method: not a preflight, so no route answers it.
    const fhir = await fetch(new URL('/fhir/R4/Patient', server.baseUrl), {
      method: 'OPTIONS',
      headers: { origin: ORIGIN },
    });
    assert.equal(fhir.status, 404);
    assert.equal((await fhir.json()).resourceType, 'OperationOutcome');
    const oauth = await fetch(new URL('/oauth2/token', server.baseUrl), { method: 'OPTIONS' });
    assert.equal(oauth.status, 404);
    assert.equal(typeof (await oauth.json()).error, 'string');
    // The sign-in page's polling route reads its cookie: no CORS, for requests and preflights.
    const login = await fetch(new URL('/auth/login/00000000-0000-4000-8000-000000000000', server.baseUrl), {
      method: 'OPTIONS',
      headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
    });
    assert.equal(login.headers.get('access-control-allow-origin'), null);
    assert.notEqual(login.status, 204);
  });

  test('OP-49 CORS: API, token, userinfo, JWKS, discovery echo the origin with credentials; a cookie changes nothing; hosted pages send no CORS', async () => {
    const tokens = await signIn();
    const assertCors = (response: Response, name: string) => {
      assert.equal(response.headers.get('access-control-allow-origin'), ORIGIN, name);
      assert.equal(response.headers.get('access-control-allow-credentials'), 'true', name);
      assert.match(response.headers.get('vary') ?? '', /\bOrigin\b/i, name);
    };
    const requests: [string, string, RequestInit][] = [
      ['/auth/me', 'GET', { headers: { authorization: `Bearer ${tokens.access_token}` } }],
      ['/oauth2/userinfo', 'GET', { headers: { authorization: `Bearer ${tokens.access_token}` } }],
      ['/.well-known/jwks.json', 'GET', {}],
      ['/.well-known/openid-configuration', 'GET', {}],
      ['/.well-known/smart-configuration', 'GET', {}],
      [
        '/oauth2/token',
        'POST',
        {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `grant_type=refresh_token&refresh_token=${tokens.refresh_token}&client_id=${fx.client.id}`,
        },
      ],
      [
        '/oauth2/revoke',
        'POST',
        { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' },
      ],
      ['/oauth2/logout', 'POST', { headers: { 'content-type': 'application/fhir+json' }, body: '{}' }],
    ];
    for (const [path, method, init] of requests) {
      const headers = { ...(init.headers as Record<string, string>), origin: ORIGIN };
      const response = await fetch(new URL(path, server.baseUrl), { ...init, method, headers });
      assertCors(response, `${method} ${path}`);
      const preflight = await fetch(new URL(path, server.baseUrl), {
        method: 'OPTIONS',
        headers: {
          origin: ORIGIN,
          'access-control-request-method': method,
          'access-control-request-headers':
            'authorization,content-type,x-medplum,cache-control,if-match,if-none-exist',
        },
      });
      assert.ok(
        preflight.status === 204 || preflight.status === 200,
        `preflight ${path}: ${preflight.status}`,
      );
      assertCors(preflight, `OPTIONS ${path}`);
      const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
      for (const h of [
        'authorization',
        'content-type',
        'x-medplum',
        'if-match',
        'if-none-exist',
        'cache-control',
      ]) {
        assert.ok(allowed.includes(h), `${path} allows ${h}`);
      }
    }
    const me = await fetch(new URL('/auth/me', server.baseUrl), {
      headers: { origin: ORIGIN, authorization: `Bearer ${tokens.access_token}` },
    });
    const exposed = (me.headers.get('access-control-expose-headers') ?? '').toLowerCase();
    for (const h of ['etag', 'location', 'content-location', 'ratelimit-limit'])
      assert.ok(exposed.includes(h), h);

    // The hosted page's cookie is HttpOnly, SameSite=Lax and scoped to its path…
    const form = await authorize(server, authorizeParams(fx).params, { headers: { origin: ORIGIN } });
    const setCookie = form.headers.getSetCookie().find((c) => c.startsWith('fedhir_authz='));
    assert.match(setCookie ?? '', /HttpOnly/i);
    assert.match(setCookie ?? '', /SameSite=Lax/i);
    assert.match(setCookie ?? '', /Path=\/oauth2\/authorize/);
    // …and no CORS route reads a cookie: with it and without it, the same answers.
    const cookie = cookiePair(form.headers, 'fedhir_authz') as string;
    for (const [path, method, body] of [
      ['/auth/me', 'GET', undefined],
      ['/oauth2/userinfo', 'GET', undefined],
      ['/oauth2/token', 'POST', 'grant_type=client_credentials'],
      ['/oauth2/revoke', 'POST', 'token=x'],
    ] as const) {
      const send = (extra: Record<string, string>) =>
        fetch(new URL(path, server.baseUrl), {
          method,
          headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded', ...extra },
          ...(body ? { body } : {}),
        });
      const without = await send({});
      const withCookie = await send({ cookie: `${cookie}; session=abc` });
      assert.equal(withCookie.status, without.status, path);
      assert.ok(withCookie.status >= 400, path);
      assert.deepEqual(await withCookie.json(), await without.json(), path);
    }

    // Hosted pages: no CORS at all, for requests and preflights.
    assert.equal(form.headers.get('access-control-allow-origin'), null);
    assert.equal(form.headers.get('access-control-allow-credentials'), null);
    for (const path of ['/oauth2/authorize', '/auth/external', '/auth/external/start']) {
      for (const method of ['GET', 'OPTIONS']) {
        const response = await fetch(new URL(path, server.baseUrl), {
          method,
          redirect: 'manual',
          headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
        });
        assert.equal(response.headers.get('access-control-allow-origin'), null, `${method} ${path}`);
        assert.equal(response.headers.get('access-control-allow-credentials'), null, `${method} ${path}`);
      }
    }
  });
});
