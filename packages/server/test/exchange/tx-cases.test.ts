/**
 * security-cases.md §2 (TX-01 … TX-32) against real peers: fedhir on 127.0.0.1, oidc-provider 9 as the
 * identity provider (userinfo, jwks and introspection paths), and a loopback fault server for the
 * userinfo answers a conforming provider never gives. Expected results are the catalogue's as
 * refined by protocol.md §4 (normative): rejected subject tokens and policy refusals are 400
 * `invalid_request`; a provider that is down is 503 `temporarily_unavailable` with Retry-After.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, generateKeyPair, SignJWT } from 'jose';
import type { AuditEvent } from '../../src/audit/audit-log.ts';
import type { ClientApplication, IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import { startTcpServer } from '../outbound/loopback-servers.ts';
import { ENGINES } from '../support/db.ts';
import {
  ACCESS_TOKEN_TYPE,
  basic,
  EXCHANGE_ENV,
  type ExchangeClient,
  exchange,
  exchangeClient,
  ID_TOKEN_TYPE,
  invite,
  JWT_TOKEN_TYPE,
  newEmail,
  startLoggedServer,
  updateClient,
} from '../support/exchange-fedhir.ts';
import {
  API_AUDIENCE,
  EXT_CLIENT_ID,
  EXT_CLIENT_SECRET,
  type ExchangeIdp,
  type FaultIdp,
  OTHER_AUDIENCE,
  OTHER_CLIENT_ID,
  startExchangeIdp,
  startFaultIdp,
} from '../support/exchange-idp.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { call, freePort, startServer, type TestServer, tokenForMembership } from '../support/server.ts';

type Reply = Awaited<ReturnType<typeof exchange>>;

/** T(x) of the catalogue: the status, the error code, no-store, and no token of any kind. */
function assertError(response: Reply, status: number, error: string, context = ''): void {
  assert.equal(response.status, status, `${context} ${JSON.stringify(response.body)}`);
  assert.equal(response.body.error, error, `${context} ${JSON.stringify(response.body)}`);
  assert.equal(typeof response.body.error_description, 'string');
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.equal(response.body.access_token, undefined);
  assert.equal(response.body.refresh_token, undefined);
}

/**
 * Writes an identity provider straight into storage, past save-time validation — standing in for a
 * host name that resolves to a private address only at connect time (protocol.md §7.6).
 */
async function storeUnchecked(server: TestServer, clientId: string, identityProvider: IdentityProvider) {
  const stored = await server.services.repo.read<ClientApplication>('ClientApplication', clientId);
  assert.ok(stored);
  await server.services.repo.update<ClientApplication>({ ...stored, identityProvider });
  server.services.clients.changed(clientId);
}

function assertOk(response: Reply, context = ''): void {
  assert.equal(response.status, 200, `${context} ${JSON.stringify(response.body)}`);
  assert.equal(typeof response.body.access_token, 'string');
}

for (const engine of ENGINES) {
  describe(`token exchange security cases (TX) on ${engine}`, () => {
    let server: TestServer;
    let idp: ExchangeIdp;
    let idp2: ExchangeIdp;
    let fault: FaultIdp;
    let fx: ProjectFixture;
    let fxB: ProjectFixture;
    /** userinfo only, no audience: the seeds' (Medplum-compatible) configuration. */
    let ui: ExchangeClient;
    /** userinfo with an audience: JWT subject tokens must be ours even on this path. */
    let uiAud: ExchangeClient;
    /** issuer + audience: the `jwks` method by default. */
    let jwks: ExchangeClient;
    /** introspection with the provider client's credentials. */
    let intro: ExchangeClient;
    /** userinfo at the fault server. */
    let faulty: ExchangeClient;
    /** useSubject (sub → membership.externalId). */
    let bySubject: ExchangeClient;
    let email: string;
    let sub: string;
    let member: ProjectMembership;

    /** Provider calls of every kind so far, at both peers. */
    const outbound = () =>
      idp.counts.userinfo + idp.counts.jwks + idp.counts.introspection + idp.counts.discovery + fault.calls;

    /** Runs `fn` and asserts it made no call to any provider. */
    async function noCall<T>(fn: () => Promise<T>): Promise<T> {
      const before = outbound();
      const result = await fn();
      assert.equal(outbound(), before, 'no outbound call to the identity provider');
      return result;
    }

    /** A user of `fx` with a verified e-mail at the provider; answers the provider `sub`. */
    async function user(
      extra: Record<string, unknown> = {},
      at = idp,
    ): Promise<{ sub: string; email: string }> {
      const address = newEmail();
      await invite(server, fx, { email: address });
      return { sub: at.account(address, extra), email: address };
    }

    before(async () => {
      idp = await startExchangeIdp();
      idp2 = await startExchangeIdp();
      fault = await startFaultIdp();
      server = await startServer(engine, EXCHANGE_ENV);
      fx = await createProjectFixture(server);
      fxB = await createProjectFixture(server);
      ui = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
      uiAud = await exchangeClient(server, fx, {
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
        audience: API_AUDIENCE,
      });
      jwks = await exchangeClient(server, fx, {
        issuer: idp.issuer,
        clientId: EXT_CLIENT_ID,
        audience: API_AUDIENCE,
      });
      intro = await exchangeClient(server, fx, {
        introspectionUrl: idp.introspectionUrl,
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
        clientSecret: EXT_CLIENT_SECRET,
        audience: API_AUDIENCE,
      });
      faulty = await exchangeClient(server, fx, { userInfoUrl: fault.userinfoUrl, clientId: 'fault-ext' });
      bySubject = await exchangeClient(server, fx, {
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
        useSubject: true,
      });
      email = newEmail('main');
      member = await invite(server, fx, { email });
      sub = idp.account(email);
    });
    after(async () => {
      await server?.close();
      await idp?.close();
      await idp2?.close();
      await fault?.close();
    });

    test('TX-01 happy path: the RFC 8693 response, a token for the local user and the requester', async () => {
      const response = await exchange(server, ui.id, await idp.accessToken(sub));
      assertOk(response);
      assert.equal(response.body.issued_token_type, ACCESS_TOKEN_TYPE);
      assert.equal(response.body.token_type, 'Bearer');
      assert.equal(typeof response.body.expires_in, 'number');
      assert.equal(response.headers.get('cache-control'), 'no-store');
      const claims = decodeJwt(response.body.access_token as string);
      assert.equal(claims.sub, member.user.reference.replace('User/', ''));
      assert.equal(claims.profile, member.profile.reference);
      assert.equal(claims.client_id, ui.id);
      assert.equal(claims.aud, server.baseUrl);
      assert.equal(claims.scope, response.body.scope);
      assert.deepEqual(response.body.profile, { reference: member.profile.reference, display: 'Ext User' });
    });

    test('TX-02 subject_token or subject_token_type missing or empty: invalid_request, no outbound call', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        assertError(await exchange(server, ui.id, undefined), 400, 'invalid_request', 'no subject_token');
        assertError(await exchange(server, ui.id, ''), 400, 'invalid_request', 'empty subject_token');
        assertError(
          await exchange(server, ui.id, token, { subject_token_type: undefined }),
          400,
          'invalid_request',
          'no subject_token_type',
        );
        assertError(
          await exchange(server, ui.id, token, { subject_token_type: '' }),
          400,
          'invalid_request',
          'empty subject_token_type',
        );
      });
    });

    test('TX-03 unsupported subject_token_type, and id_token/jwt without a key source: invalid_request', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        for (const type of [
          'urn:ietf:params:oauth:token-type:refresh_token',
          'urn:ietf:params:oauth:token-type:saml2',
          'foo',
        ]) {
          assertError(
            await exchange(server, ui.id, token, { subject_token_type: type }),
            400,
            'invalid_request',
            type,
          );
        }
        // `ui` has userInfoUrl only: no issuer, no jwksUrl, so ID tokens and JWTs cannot be verified.
        const idToken = await idp.idToken(sub);
        for (const type of [ID_TOKEN_TYPE, JWT_TOKEN_TYPE]) {
          assertError(
            await exchange(server, ui.id, idToken, { subject_token_type: type }),
            400,
            'invalid_request',
            type,
          );
        }
      });
      // Control: with a key source both are accepted and verified locally.
      assertOk(
        await exchange(server, jwks.id, await idp.idToken(sub), { subject_token_type: ID_TOKEN_TYPE }),
        'id_token',
      );
      assertOk(
        await exchange(server, jwks.id, await idp.jwtAccessToken(sub), {
          subject_token_type: JWT_TOKEN_TYPE,
        }),
        'jwt',
      );
    });

    test('TX-04 an ID token, refresh token, logout token or one of our own tokens declared as access_token', async () => {
      const idToken = await idp.idToken(sub);
      const refresh = await idp.refreshToken(sub);
      const logout = await idp.sign(
        {
          iss: idp.issuer,
          aud: EXT_CLIENT_ID,
          sub,
          iat: Math.floor(Date.now() / 1000),
          exp: Math.floor(Date.now() / 1000) + 120,
          jti: 'logout-1',
          events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        },
        { typ: 'logout+jwt' },
      );
      const ours = (await exchange(server, ui.id, await idp.accessToken(sub))).body.access_token as string;
      const own = await tokenForMembership(server.services, fx.admin.membership);
      for (const [name, token] of Object.entries({ idToken, refresh, logout, ours, own })) {
        // userinfo: the provider refuses what is not its access token.
        assertError(await exchange(server, ui.id, token), 400, 'invalid_request', `userinfo ${name}`);
        // jwks: signature, issuer and audience are checked locally; ID tokens are never access tokens.
        assertError(await exchange(server, jwks.id, token), 400, 'invalid_request', `jwks ${name}`);
        // introspection: inactive, or not an access token, or not for us.
        assertError(await exchange(server, intro.id, token), 400, 'invalid_request', `introspection ${name}`);
      }
      // ID-token markers refuse a token even when its audience is our configured API audience and it
      // carries every claim the mapping needs (control: the same claims without them pass).
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: idp.issuer, aud: API_AUDIENCE, sub, email, email_verified: true, exp: now + 300 };
      for (const [name, marker] of Object.entries({
        nonce: { nonce: 'n' },
        atHash: { at_hash: 'x6bqvt2AQQbgGfBVgDOP_w' },
        tokenUse: { token_use: 'id' },
      })) {
        assertError(
          await exchange(server, jwks.id, await idp.sign({ ...claims, ...marker }, { typ: 'JWT' })),
          400,
          'invalid_request',
          `ID token marker ${name}`,
        );
      }
      assertOk(await exchange(server, jwks.id, await idp.sign(claims)), 'control');
      // A JWT subject token on the userinfo path with an audience configured: refused before any call
      // (a fresh ID token, so no cached verdict answers for the check).
      const fresh = await idp.idToken(sub);
      await noCall(async () =>
        assertError(await exchange(server, uiAud.id, fresh), 400, 'invalid_request', 'uiAud idToken'),
      );
    });

    test('TX-05 actor_token or actor_token_type (delegation not offered): invalid_request', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        for (const form of [
          { actor_token: token },
          { actor_token_type: ACCESS_TOKEN_TYPE },
          { actor_token: token, actor_token_type: ACCESS_TOKEN_TYPE },
        ]) {
          assertError(
            await exchange(server, ui.id, token, form),
            400,
            'invalid_request',
            JSON.stringify(Object.keys(form)),
          );
        }
      });
    });

    test('TX-06 requested_token_type other than access_token: invalid_request', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        for (const type of [
          'urn:ietf:params:oauth:token-type:saml2',
          ID_TOKEN_TYPE,
          'urn:ietf:params:oauth:token-type:refresh_token',
        ]) {
          assertError(
            await exchange(server, ui.id, token, { requested_token_type: type }),
            400,
            'invalid_request',
            type,
          );
        }
      });
      assertOk(await exchange(server, ui.id, token, { requested_token_type: ACCESS_TOKEN_TYPE }), 'control');
    });

    test('TX-07 audience or resource not this server: invalid_target', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        assertError(
          await exchange(server, ui.id, token, { audience: 'https://evil.example' }),
          400,
          'invalid_target',
        );
        assertError(
          await exchange(server, ui.id, token, { resource: 'https://other.example/fhir/R4' }),
          400,
          'invalid_target',
        );
        assertError(await exchange(server, ui.id, token, { audience: API_AUDIENCE }), 400, 'invalid_target');
      });
      assertOk(await exchange(server, ui.id, token, { audience: server.baseUrl }), 'our base URL');
      assertOk(
        await exchange(server, ui.id, token, { resource: `${server.baseUrl}fhir/R4` }),
        'our FHIR base',
      );
    });

    test('TX-08 scope beyond what is grantable: down-scoped, and the grant echoed honestly', async () => {
      const response = await exchange(server, ui.id, await idp.accessToken(sub), {
        scope: 'openid superpower admin:all user/Patient.rs',
      });
      assertOk(response);
      assert.equal(response.body.scope, 'openid user/Patient.rs');
      assert.equal(decodeJwt(response.body.access_token as string).scope, 'openid user/Patient.rs');
      assert.equal(response.body.refresh_token, undefined, 'no offline_access asked, no refresh token');
      // Resource scopes narrow the membership's access, never widen it: Patient read works,
      // Observation (outside the granted scope) does not.
      const token = response.body.access_token as string;
      assert.equal((await call(server, 'GET', '/fhir/R4/Patient', { token })).status, 200);
      assert.equal((await call(server, 'GET', '/fhir/R4/Observation', { token })).status, 403);
      // `offline` is granted and echoed as `offline_access`, with a refresh token.
      const offline = await exchange(server, ui.id, await idp.accessToken(sub), { scope: 'openid offline' });
      assertOk(offline, 'offline');
      assert.equal(offline.body.scope, 'openid offline_access');
      assert.equal(typeof offline.body.refresh_token, 'string');
    });

    test('TX-09 client_id missing, unknown or malformed: invalid_request / invalid_client, never 404 or 500', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        assertError(await exchange(server, undefined, token), 400, 'invalid_request', 'missing');
        const unknown = await exchange(server, '00000000-0000-4000-8000-000000000000', token);
        assertError(unknown, 401, 'invalid_client', 'unknown');
        for (const id of ['x'.repeat(5000), 'not-a-uuid', "' OR 1=1--"]) {
          const response = await exchange(server, id, token);
          assertError(response, 401, 'invalid_client', id.slice(0, 20));
          assert.deepEqual(response.body, unknown.body, 'one body for every unknown client');
        }
      });
      // The same body as a disabled client (TX-10).
      const off = await exchangeClient(
        server,
        fx,
        { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
        { status: 'off' },
      );
      const disabled = await exchange(server, off.id, token);
      assertError(disabled, 401, 'invalid_client', 'disabled');
      assert.deepEqual(
        disabled.body,
        (await exchange(server, '00000000-0000-4000-8000-000000000000', token)).body,
      );
    });

    test('TX-10 client without identity provider, inactive, or without the grant: no outbound call', async () => {
      const token = await idp.accessToken(sub);
      const noIdp = await exchangeClient(server, fx, undefined);
      const noGrant = await exchangeClient(
        server,
        fx,
        { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
        { grantType: ['authorization_code', 'refresh_token'] },
      );
      const off = await exchangeClient(
        server,
        fx,
        { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
        { status: 'off' },
      );
      await noCall(async () => {
        assertError(
          await exchange(server, noIdp.id, token),
          400,
          'unauthorized_client',
          'no identity provider',
        );
        assertError(
          await exchange(server, noGrant.id, token),
          400,
          'unauthorized_client',
          'grant not enabled',
        );
        assertError(await exchange(server, off.id, token), 401, 'invalid_client', 'inactive');
      });
      const withGrant = await exchangeClient(
        server,
        fx,
        { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
        { grantType: ['urn:ietf:params:oauth:grant-type:token-exchange'] },
      );
      assertOk(await exchange(server, withGrant.id, token), 'grant enabled');
    });

    test('TX-11 wrong credentials, and publicExchange false without credentials: 401 invalid_client', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () => {
        const wrongBasic = await exchange(
          server,
          undefined,
          token,
          {},
          { authorization: basic(ui.id, 'wrong') },
        );
        assertError(wrongBasic, 401, 'invalid_client', 'basic');
        assert.match(wrongBasic.headers.get('www-authenticate') ?? '', /^Basic/);
        assertError(
          await exchange(server, ui.id, token, { client_secret: 'wrong' }),
          401,
          'invalid_client',
          'post',
        );
      });
      // publicExchange true (the default, for the Medplum SDK): client_id alone is accepted.
      assertOk(await exchange(server, ui.id, token), 'public');
      // Correct credentials are accepted either way.
      assertOk(
        await exchange(server, undefined, token, {}, { authorization: basic(ui.id, ui.secret) }),
        'basic',
      );

      const closed = await exchangeClient(
        server,
        fx,
        { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID },
        { publicExchange: false },
      );
      await noCall(async () => {
        assertError(await exchange(server, closed.id, token), 401, 'invalid_client', 'publicExchange false');
        const legacy = await call(server, 'POST', '/auth/exchange', {
          body: { externalAccessToken: token, clientId: closed.id },
        });
        assert.equal(legacy.status, 401, JSON.stringify(legacy.body));
        assert.equal(legacy.body.access_token, undefined);
      });
      assertOk(
        await exchange(server, undefined, token, {}, { authorization: basic(closed.id, closed.secret) }),
        'basic',
      );
      assertOk(await exchange(server, closed.id, token, { client_secret: closed.secret }), 'post');
    });

    test('TX-12 Basic header and client_secret in the body at once: invalid_request', async () => {
      const token = await idp.accessToken(sub);
      await noCall(async () =>
        assertError(
          await exchange(
            server,
            undefined,
            token,
            { client_secret: ui.secret },
            { authorization: basic(ui.id, ui.secret) },
          ),
          400,
          'invalid_request',
        ),
      );
    });

    test('TX-13 userinfo answers 401 or 403 (expired, revoked, foreign, unknown): invalid_request with a reason', async () => {
      const revoked = await idp.accessToken(sub);
      await idp.revoke(revoked);
      const noOpenid = await idp.accessToken(sub, { scope: 'email' }); // oidc-provider: 403 insufficient_scope
      const cases = {
        unknown: 'a-token-the-provider-never-issued',
        revoked,
        noOpenid,
        fault401: fault.register({ kind: 'status', status: 401 }),
        fault403: fault.register({ kind: 'status', status: 403 }),
      };
      for (const [name, token] of Object.entries(cases)) {
        const client = name.startsWith('fault') ? faulty : ui;
        const response = await exchange(server, client.id, token);
        assertError(response, 400, 'invalid_request', name);
        assert.match(response.body.error_description as string, /rejected/i, name);
        assert.ok(!(response.body.error_description as string).includes(fault.marker), 'no upstream body');
      }
    });

    test('TX-13 jwks path: bad signature, expired, wrong issuer or audience, alg none or HS256 refused', async () => {
      const now = Math.floor(Date.now() / 1000);
      const good = {
        iss: idp.issuer,
        aud: API_AUDIENCE,
        sub,
        email,
        email_verified: true,
        iat: now,
        exp: now + 300,
      };
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const foreign = await generateKeyPair('ES256');
      const publicJwk = idp.publicKeys.find((k) => k.kid === 'es256-1');
      const forged = {
        expired: await idp.sign({ ...good, iat: now - 7200, exp: now - 3600 }),
        notYetValid: await idp.sign({ ...good, nbf: now + 3600 }),
        noExp: await idp.sign({ ...good, exp: undefined }),
        wrongIssuer: await idp.sign({ ...good, iss: `${idp.issuer}/` }),
        wrongAudience: await idp.sign({ ...good, aud: OTHER_AUDIENCE }),
        foreignKey: await new SignJWT(good)
          .setProtectedHeader({ alg: 'ES256', kid: 'es256-1' })
          .sign(foreign.privateKey),
        unknownKid: await new SignJWT(good)
          .setProtectedHeader({ alg: 'ES256', kid: 'rotated-9' })
          .sign(foreign.privateKey),
        algNone: `${b64({ alg: 'none', kid: 'es256-1' })}.${b64(good)}.`,
        hs256Confusion: await new SignJWT(good)
          .setProtectedHeader({ alg: 'HS256', kid: 'es256-1' })
          .sign(new TextEncoder().encode(JSON.stringify(publicJwk))),
        tampered: (await idp.sign(good)).replace(
          /\.([^.]+)\./,
          (_m, p: string) =>
            `.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'someone-else' })}.`,
        ),
      };
      for (const [name, token] of Object.entries(forged)) {
        assertError(await exchange(server, jwks.id, token), 400, 'invalid_request', name);
      }
      // Control: the same claims, signed by the provider, pass.
      assertOk(await exchange(server, jwks.id, await idp.sign(good)), 'control');
    });

    test('TX-14 userinfo answers 5xx or 429: 503 temporarily_unavailable / 429, Retry-After, one call each', async () => {
      for (const status of [500, 502, 503]) {
        const calls = fault.calls;
        const response = await exchange(server, faulty.id, fault.register({ kind: 'status', status }));
        assertError(response, 503, 'temporarily_unavailable', String(status));
        assert.match(response.headers.get('retry-after') ?? '', /^\d+$/);
        assert.ok(!JSON.stringify(response.body).includes(fault.marker), 'generic text');
        assert.equal(fault.calls, calls + 1, 'no retry loop');
      }
      const throttled = await exchange(
        server,
        faulty.id,
        fault.register({ kind: 'status', status: 429, retryAfter: '7' }),
      );
      assertError(throttled, 429, 'invalid_request', '429');
      assert.equal(throttled.headers.get('retry-after'), '7');
      const unbounded = await exchange(
        server,
        faulty.id,
        fault.register({ kind: 'status', status: 429, retryAfter: '86400' }),
      );
      assertError(unbounded, 429, 'invalid_request', '429 long');
      const retry = Number(unbounded.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, `Retry-After bounded, got ${retry}`);
    });

    test('TX-14 the jwks, introspection and discovery endpoints down or failing: 503 temporarily_unavailable', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const jwt = await idp.jwtAccessToken(sub);
      const opaque = await idp.opaqueResourceToken(sub);
      const down = {
        jwks503: [{ jwksUrl: fault.route({ kind: 'status', status: 503 }) }, jwt],
        jwksRefused: [{ jwksUrl: `${closed}/jwks` }, jwt],
        discoveryRefused: [{ issuer: closed }, jwt],
        introspection500: [
          { introspectionUrl: fault.route({ kind: 'status', status: 500 }), clientSecret: 's' },
          opaque,
        ],
        introspectionRefused: [{ introspectionUrl: `${closed}/introspect`, clientSecret: 's' }, opaque],
      } as const;
      for (const [name, [config, token]] of Object.entries(down)) {
        const client = await exchangeClient(server, fx, {
          ...config,
          clientId: EXT_CLIENT_ID,
          audience: API_AUDIENCE,
        });
        const response = await exchange(server, client.id, token);
        assertError(response, 503, 'temporarily_unavailable', name);
        assert.match(response.headers.get('retry-after') ?? '', /^\d+$/, name);
      }
      // A key set that is not one is an unexpected answer, not an outage and not a bad token.
      const html = await exchangeClient(server, fx, {
        jwksUrl: fault.route({ kind: 'body', contentType: 'text/html', body: `<p>${fault.marker}</p>` }),
        clientId: EXT_CLIENT_ID,
        audience: API_AUDIENCE,
      });
      const response = await exchange(server, html.id, jwt);
      assertError(response, 400, 'invalid_request', 'jwks html');
      assert.match(response.body.error_description as string, /unexpectedly/);
    });

    test('TX-15 userinfo hangs: aborted at the outbound deadline, 503 temporarily_unavailable', async () => {
      const response = await exchange(server, faulty.id, fault.register({ kind: 'hang' }));
      assertError(response, 503, 'temporarily_unavailable');
      assert.match(response.headers.get('retry-after') ?? '', /^\d+$/);
    });

    test('TX-16 userinfo 200 with invalid JSON, an array, a string, null or HTML: invalid_request', async () => {
      const faults = {
        invalidJson: fault.register({
          kind: 'body',
          contentType: 'application/json',
          body: `{"sub": "${fault.marker}`,
        }),
        array: fault.register({ kind: 'json', value: [{ sub: 'x', email: email, email_verified: true }] }),
        string: fault.register({ kind: 'json', value: fault.marker }),
        null: fault.register({ kind: 'json', value: null }),
        html: fault.register({
          kind: 'body',
          contentType: 'text/html',
          body: `<html>${fault.marker}</html>`,
        }),
      };
      for (const [name, token] of Object.entries(faults)) {
        const response = await exchange(server, faulty.id, token);
        assertError(response, 400, 'invalid_request', name);
        assert.ok(!JSON.stringify(response.body).includes(fault.marker), `${name}: no upstream body`);
      }
    });

    test('TX-17 userinfo 200 with 10 MB, endless chunks or a gzip bomb: aborted at the cap, invalid_request', async () => {
      const faults = {
        contentLength: fault.register({ kind: 'large', bytes: 10 * 1024 * 1024, chunked: false }),
        chunked: fault.register({ kind: 'large', bytes: 10 * 1024 * 1024, chunked: true }),
        gzipBomb: fault.register({ kind: 'gzip-bomb', bytes: 20 * 1024 * 1024 }),
      };
      for (const [name, token] of Object.entries(faults)) {
        assertError(await exchange(server, faulty.id, token), 400, 'invalid_request', name);
      }
      assertOk(await exchange(server, ui.id, await idp.accessToken(sub)), 'still serving');
    });

    test('TX-18 redirect to an internal host, or a private userInfoUrl: never followed or connected', async () => {
      // 127.0.0.2 is loopback outside the allow list: a canary that counts connections.
      const canary = await startTcpServer('127.0.0.2');
      try {
        const redirected = fault.register({ kind: 'redirect', location: `${canary.origin}/userinfo` });
        assertError(await exchange(server, faulty.id, redirected), 400, 'invalid_request', 'redirect');

        // At save: private and loopback addresses outside ALLOW_PRIVATE_IDP_URLS are refused.
        for (const url of [
          `${canary.origin}/userinfo`,
          'http://[::1]:9/userinfo',
          'http://0x7f000002:9/userinfo',
        ]) {
          const put = await updateClient(server, fx, ui.id, {
            identityProvider: { userInfoUrl: url, clientId: EXT_CLIENT_ID },
          });
          assert.equal(put.status, 400, `${url}: ${JSON.stringify(put.body)}`);
        }
        // At connect: a stored configuration that bypassed save validation is still blocked.
        const stale = await exchangeClient(server, fx, {
          userInfoUrl: idp.userinfoUrl,
          clientId: EXT_CLIENT_ID,
        });
        await storeUnchecked(server, stale.id, {
          userInfoUrl: `${canary.origin}/userinfo`,
          clientId: EXT_CLIENT_ID,
        });
        assertError(
          await exchange(server, stale.id, await idp.accessToken(sub)),
          400,
          'invalid_request',
          'connect',
        );
        const staleKeys = await exchangeClient(server, fx, {
          jwksUrl: idp.jwksUrl,
          clientId: EXT_CLIENT_ID,
          audience: API_AUDIENCE,
        });
        await storeUnchecked(server, staleKeys.id, {
          jwksUrl: `${canary.origin}/jwks`,
          clientId: EXT_CLIENT_ID,
          audience: API_AUDIENCE,
        });
        assertError(
          await exchange(server, staleKeys.id, await idp.jwtAccessToken(sub)),
          400,
          'invalid_request',
          'jwks',
        );
        assert.equal(canary.connections, 0, 'nothing ever connected to 127.0.0.2');
      } finally {
        await canary.close();
      }
      // The client whose update was refused still works.
      assertOk(await exchange(server, ui.id, await idp.accessToken(sub)), 'unchanged');
    });

    test('TX-19 userinfo answers application/jwt unsigned or with a bad signature: invalid_request', async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        sub: 'jwt-user',
        email,
        email_verified: true,
        aud: 'fault-ext',
        iat: now,
        exp: now + 300,
      };
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
      const foreign = await generateKeyPair('ES256');
      const badSig = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'es256-1' })
        .sign(foreign.privateKey);
      const keyed = await exchangeClient(server, fx, {
        userInfoUrl: fault.userinfoUrl,
        jwksUrl: idp.jwksUrl,
        clientId: 'fault-ext',
      });
      for (const [name, body] of Object.entries({ unsigned, badSig })) {
        for (const client of [faulty, keyed]) {
          const token = fault.register({ kind: 'body', contentType: 'application/jwt', body });
          assertError(await exchange(server, client.id, token), 400, 'invalid_request', `${name}`);
        }
      }
      // Control: a userinfo JWT signed by the provider's key is verified and used.
      const signed = await idp.sign(claims, { typ: 'JWT' });
      assertOk(
        await exchange(
          server,
          keyed.id,
          fault.register({ kind: 'body', contentType: 'application/jwt', body: signed }),
        ),
        'signed by the provider',
      );
    });

    test('TX-20 e-mail claim missing, empty, not a string or an array; sub missing, empty or not a string', async () => {
      for (const [name, value] of Object.entries({
        missing: undefined,
        empty: '',
        number: 42,
        array: [email, email],
      })) {
        const account = idp.account(email, { email: value });
        if (value === undefined) idp.setAccount(account, { email_verified: true });
        assertError(
          await exchange(server, ui.id, await idp.accessToken(account)),
          400,
          'invalid_request',
          `email ${name}`,
        );
      }
      const faultSubject = await exchangeClient(server, fx, {
        userInfoUrl: fault.userinfoUrl,
        clientId: 'fault-ext',
        useSubject: true,
      });
      const externalId = `ext-${Date.now()}`;
      await invite(server, fx, { externalId });
      for (const [name, value] of Object.entries({
        missing: undefined,
        empty: '',
        number: 42,
        array: [externalId],
      })) {
        const body = { email, email_verified: true, ...(value === undefined ? {} : { sub: value }) };
        const token = fault.register({ kind: 'json', value: body });
        assertError(await exchange(server, faultSubject.id, token), 400, 'invalid_request', `sub ${name}`);
      }
      // Control: the same server maps a well-formed subject.
      assertOk(
        await exchange(server, faultSubject.id, fault.register({ kind: 'json', value: { sub: externalId } })),
        'sub control',
      );
    });

    test('TX-21 email_verified false, absent or "false" refused; true and "true" accepted', async () => {
      for (const [name, verified] of Object.entries({
        false: false,
        absent: undefined,
        string: 'false',
        other: 'yes',
      })) {
        const u = await user({ email_verified: verified });
        if (verified === undefined) idp.setAccount(u.sub, { email: u.email });
        const response = await exchange(server, ui.id, await idp.accessToken(u.sub));
        assertError(response, 400, 'invalid_request', name);
        assert.match(response.body.error_description as string, /verified/i);
      }
      assertOk(
        await exchange(server, ui.id, await idp.accessToken((await user({ email_verified: true })).sub)),
        'true',
      );
      assertOk(
        await exchange(server, ui.id, await idp.accessToken((await user({ email_verified: 'true' })).sub)),
        '"true"',
      );
      // Absent is accepted only where the provider is declared never to send it.
      const lenient = await exchangeClient(server, fx, {
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
        allowUnverifiedEmail: true,
      });
      const u = await user();
      idp.setAccount(u.sub, { email: u.email });
      assertOk(await exchange(server, lenient.id, await idp.accessToken(u.sub)), 'allowUnverifiedEmail');
      const refused = await user({ email_verified: false });
      assertError(
        await exchange(server, lenient.id, await idp.accessToken(refused.sub)),
        400,
        'invalid_request',
        'false',
      );
    });

    test('TX-22 e-mail of no user in the client project: invalid_request, nobody provisioned', async () => {
      const stranger = newEmail('stranger');
      const account = idp.account(stranger);
      const response = await exchange(server, ui.id, await idp.accessToken(account));
      assertError(response, 400, 'invalid_request');
      assert.ok(!(response.body.error_description as string).includes(stranger), 'names no one');
      assert.equal(await server.services.repo.findUserByEmail(stranger, fx.project.id), undefined);
    });

    test('TX-23 several memberships need membership_id; another user or project refused; other projects ignored', async () => {
      const address = newEmail('multi');
      const first = await invite(server, fx, { email: address });
      const second = await invite(server, fx, { email: address, resourceType: 'Patient' });
      const account = idp.account(address);
      const token = await idp.accessToken(account);
      const ambiguous = await exchange(server, ui.id, token);
      assertError(ambiguous, 400, 'invalid_request', 'ambiguous');
      assert.match(ambiguous.body.error_description as string, /membership_id/);
      assertError(
        await exchange(server, ui.id, token, { membership_id: fx.admin.membership.id }),
        400,
        'invalid_request',
        'another user',
      );
      assertError(
        await exchange(server, ui.id, token, { membership_id: fxB.admin.membership.id }),
        400,
        'invalid_request',
        'another project',
      );
      assertError(
        await exchange(server, ui.id, token, { membership_id: 'not-a-uuid' }),
        400,
        'invalid_request',
      );
      const chosen = await exchange(server, ui.id, token, { membership_id: second.id });
      assertOk(chosen, 'chosen');
      assert.equal((chosen.body.profile as { reference: string }).reference, second.profile.reference);
      assert.notEqual(second.profile.reference, first.profile.reference);

      // The same e-mail in two projects: only the client's project counts.
      const twoProjects = newEmail('two');
      const inA = await invite(server, fx, { email: twoProjects });
      await invite(server, fxB, { email: twoProjects });
      const response = await exchange(server, ui.id, await idp.accessToken(idp.account(twoProjects)));
      assertOk(response, 'two projects');
      assert.equal((response.body.profile as { reference: string }).reference, inA.profile.reference);
      assert.deepEqual(response.body.project, { reference: `Project/${fx.project.id}` });
    });

    test('TX-24 useSubject: the e-mail claim is ignored, only externalId = sub maps', async () => {
      const externalSub = `subject-${Date.now()}`;
      const byId = await invite(server, fx, { externalId: externalSub, email: newEmail('byid') });
      const victim = newEmail('victim');
      await invite(server, fx, { email: victim });
      idp.setAccount(externalSub, { email: victim, email_verified: true });
      const response = await exchange(server, bySubject.id, await idp.accessToken(externalSub));
      assertOk(response);
      assert.equal((response.body.profile as { reference: string }).reference, byId.profile.reference);
      const unknown = idp.account(victim);
      assertError(
        await exchange(server, bySubject.id, await idp.accessToken(unknown)),
        400,
        'invalid_request',
      );
    });

    test('TX-25 useSubject: the same sub from another provider does not map to the linked membership', async () => {
      const shared = `shared-${Date.now()}`;
      await invite(server, fx, { externalId: shared });
      idp.setAccount(shared, { email: newEmail(), email_verified: true });
      idp2.setAccount(shared, { email: newEmail(), email_verified: true });
      const viaB = await exchangeClient(server, fx, {
        userInfoUrl: idp2.userinfoUrl,
        clientId: EXT_CLIENT_ID,
        useSubject: true,
      });
      assertOk(await exchange(server, bySubject.id, await idp.accessToken(shared)), 'provider A');
      assertError(
        await exchange(server, viaB.id, await idp2.accessToken(shared)),
        400,
        'invalid_request',
        'provider B',
      );
      assertOk(await exchange(server, bySubject.id, await idp.accessToken(shared)), 'provider A again');
    });

    test('TX-26 a token of the same provider for another app or audience: invalid_request where an audience is set', async () => {
      // jwks: a JWT access token for another API.
      assertError(
        await exchange(server, jwks.id, await idp.jwtAccessToken(sub, { audience: OTHER_AUDIENCE })),
        400,
        'invalid_request',
        'jwks other audience',
      );
      // introspection: an opaque token for another API, and one with no audience at all.
      assertError(
        await exchange(server, intro.id, await idp.opaqueResourceToken(sub, { audience: OTHER_AUDIENCE })),
        400,
        'invalid_request',
        'introspection other audience',
      );
      assertError(
        await exchange(server, intro.id, await idp.accessToken(sub, { clientId: OTHER_CLIENT_ID })),
        400,
        'invalid_request',
        'introspection no audience',
      );
      // userinfo with an audience configured: a JWT for another audience is refused before any call.
      const other = await idp.jwtAccessToken(sub, { audience: OTHER_AUDIENCE, clientId: OTHER_CLIENT_ID });
      await noCall(async () =>
        assertError(await exchange(server, uiAud.id, other), 400, 'invalid_request', 'userinfo'),
      );
      // An ID token issued to another app, presented as an ID token: its audience is not our client.
      assertError(
        await exchange(server, jwks.id, await idp.idToken(sub, { clientId: OTHER_CLIENT_ID }), {
          subject_token_type: ID_TOKEN_TYPE,
        }),
        400,
        'invalid_request',
        'id_token of another app',
      );
      // Controls: tokens for our audience pass each path, verified locally or by introspection only.
      const counts = { ...idp.counts };
      assertOk(await exchange(server, jwks.id, await idp.jwtAccessToken(sub)), 'jwks ours');
      assertOk(await exchange(server, intro.id, await idp.opaqueResourceToken(sub)), 'introspection ours');
      assert.equal(idp.counts.userinfo, counts.userinfo, 'claims came with the token: no userinfo call');
      assert.equal(idp.counts.introspection, counts.introspection + 1);
    });

    test('TX-27 a client of project B with a token for a user of project A only: invalid_request', async () => {
      const clientB = await exchangeClient(server, fxB, {
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
      });
      const response = await exchange(server, clientB.id, await idp.accessToken(sub));
      assertError(response, 400, 'invalid_request');
      const ok = await exchange(server, ui.id, await idp.accessToken(sub));
      assertOk(ok);
      assert.deepEqual(ok.body.project, { reference: `Project/${fx.project.id}` });
    });

    test('TX-28 membership deactivated, or the provider removed, while the provider token is valid', async () => {
      const u = await user();
      const token = await idp.accessToken(u.sub);
      const first = await exchange(server, ui.id, token);
      assertOk(first, 'before');
      const membership = (await server.services.repo.findMemberships(
        `User/${decodeJwt(first.body.access_token as string).sub}`,
        fx.project.id,
      )) as ProjectMembership[];
      const target = membership[0] as ProjectMembership;
      const put = await call(server, 'PUT', `/fhir/R4/ProjectMembership/${target.id}`, {
        token: fx.admin.token,
        body: { ...target, active: false },
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const response = await exchange(server, ui.id, token);
      assertError(response, 400, 'invalid_request', 'inactive');
      assert.match(response.body.error_description as string, /not active/);

      const removable = await exchangeClient(server, fx, {
        userInfoUrl: idp.userinfoUrl,
        clientId: EXT_CLIENT_ID,
      });
      const live = await idp.accessToken(sub);
      assertOk(await exchange(server, removable.id, live), 'provider configured');
      const removed = await updateClient(server, fx, removable.id, { identityProvider: null });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assertError(await exchange(server, removable.id, live), 400, 'unauthorized_client', 'provider removed');
    });

    test('TX-29 one subject token exchanged twice, sequentially and concurrently: independent grants', async () => {
      const token = await idp.accessToken(sub);
      const calls = idp.counts.userinfo;
      const a = await exchange(server, ui.id, token);
      const b = await exchange(server, ui.id, token);
      const parallel = await Promise.all(Array.from({ length: 5 }, () => exchange(server, ui.id, token)));
      const all = [a, b, ...parallel];
      for (const r of all) assertOk(r);
      const refresh = new Set(all.map((r) => r.body.refresh_token));
      const logins = new Set(all.map((r) => decodeJwt(r.body.access_token as string).login_id));
      assert.equal(refresh.size, all.length, 'never the same refresh token twice');
      assert.equal(logins.size, all.length, 'a Login per exchange');
      assert.equal(idp.counts.userinfo, calls + 1, 'one provider call for one token');
    });

    test('TX-30 oversized subject_token, or with CR/LF/NUL/non-ASCII: invalid_request before any call', async () => {
      const valid = await idp.accessToken(sub);
      await noCall(async () => {
        for (const [name, token] of Object.entries({
          oversized: 'a'.repeat(9 * 1024),
          crlf: `${valid}\r\nX-Injected: 1`,
          nul: `${valid}\u0000`,
          nonAscii: `${valid}é`,
          space: `${valid} x`,
          quote: `${valid}"`,
        })) {
          assertError(await exchange(server, ui.id, token), 400, 'invalid_request', name);
        }
      });
    });
  });
}

describe('TX-31 failed exchanges are limited per client; rejections are cached', () => {
  let server: TestServer;
  let idp: ExchangeIdp;
  let fx: ProjectFixture;
  let client: ExchangeClient;

  before(async () => {
    idp = await startExchangeIdp();
    server = await startServer('pglite', {
      ...EXCHANGE_ENV,
      RATE_LIMIT_FAILURES_PER_SUBJECT: '5',
      RATE_LIMIT_FAILURES_PER_IP: '1000',
    });
    fx = await createProjectFixture(server);
    client = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
  });
  after(async () => {
    await server?.close();
    await idp?.close();
  });

  test('TX-31 a rejected token is cached: the provider is not hammered', async () => {
    const calls = idp.counts.userinfo;
    assertError(await exchange(server, client.id, 'garbage-token-1'), 400, 'invalid_request');
    assertError(await exchange(server, client.id, 'garbage-token-1'), 400, 'invalid_request');
    assert.equal(idp.counts.userinfo, calls + 1);
  });

  test('TX-31 failures beyond the per-client budget: 429 with Retry-After; successes never count', async () => {
    // Successes are not throttled: many valid exchanges by one client (budget: 5 failures).
    const busy = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
    const address = newEmail('busy');
    await invite(server, fx, { email: address });
    const account = idp.account(address);
    for (let i = 0; i < 12; i++)
      assertOk(await exchange(server, busy.id, await idp.accessToken(account)), `#${i}`);

    let last: Reply | undefined;
    let failures = 0;
    for (let i = 0; i < 20; i++) {
      last = await exchange(server, client.id, `garbage-token-budget-${i}`);
      if (last.status === 429) break;
      failures++;
    }
    assert.equal(last?.status, 429, JSON.stringify(last?.body));
    assert.ok(failures <= 5, `refused after the budget, saw ${failures} failures first`);
    assert.equal(last?.body.error, 'invalid_request');
    assert.match(last?.headers.get('retry-after') ?? '', /^\d+$/);
    // The legacy door shares the budget of the client.
    const legacy = await call(server, 'POST', '/auth/exchange', {
      body: { externalAccessToken: 'garbage-token-legacy', clientId: client.id },
    });
    assert.equal(legacy.status, 429, JSON.stringify(legacy.body));
    // Another client of the same caller is not locked out.
    assertOk(await exchange(server, busy.id, await idp.accessToken(account)), 'other client');
  });
});

describe('TX-32 logs, answers and the audit trail of exchanges', () => {
  let server: TestServer & { logs: string[] };
  let idp: ExchangeIdp;
  let fault: FaultIdp;
  let fx: ProjectFixture;

  before(async () => {
    idp = await startExchangeIdp();
    fault = await startFaultIdp();
    server = await startLoggedServer('pglite');
    fx = await createProjectFixture(server);
  });
  after(async () => {
    await server?.close();
    await idp?.close();
    await fault?.close();
  });

  test('TX-32 logs and error answers carry no subject token, provider body or secret', async () => {
    const ui = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
    const faulty = await exchangeClient(server, fx, {
      userInfoUrl: fault.userinfoUrl,
      clientId: 'fault-ext',
      clientSecret: 'provider-client-secret-never-logged',
    });
    const address = newEmail();
    await invite(server, fx, { email: address });
    const good = await idp.accessToken(idp.account(address));
    const secrets = [good, 'provider-client-secret-never-logged', ui.secret, fault.marker];
    const tokens = [
      fault.register({ kind: 'status', status: 401 }),
      fault.register({ kind: 'status', status: 500 }),
      fault.register({ kind: 'status', status: 429, retryAfter: '3' }),
      fault.register({ kind: 'body', contentType: 'text/html', body: `<p>${fault.marker}</p>` }),
      fault.register({ kind: 'json', value: { sub: fault.marker, email: fault.marker } }),
    ];
    secrets.push(...tokens);
    const answers: string[] = [];
    for (const token of tokens) answers.push(JSON.stringify((await exchange(server, faulty.id, token)).body));
    answers.push(
      JSON.stringify((await exchange(server, ui.id, good, { client_secret: 'wrong-secret' })).body),
    );
    answers.push(JSON.stringify((await exchange(server, ui.id, 'x'.repeat(9000))).body));
    assertOk(await exchange(server, ui.id, good));
    assert.ok(server.logs.length > 0, 'the server logged at trace level');
    const logged = server.logs.join('\n');
    for (const secret of secrets) {
      assert.ok(!logged.includes(secret), `log holds ${secret.slice(0, 12)}…`);
      for (const answer of answers)
        assert.ok(!answer.includes(secret), `answer holds ${secret.slice(0, 12)}…`);
    }
  });

  test('TX-32 every exchange, failed or not, is an AuditEvent that holds no token', async () => {
    const ui = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
    const address = newEmail('audit');
    await invite(server, fx, { email: address });
    const good = await idp.accessToken(idp.account(address));
    const rejected = 'rejected-token-for-audit-0123456789abcdef';
    assertError(await exchange(server, ui.id, rejected), 400, 'invalid_request');
    const legacy = await call(server, 'POST', '/auth/exchange', {
      body: { externalAccessToken: `${rejected}-legacy`, clientId: ui.id },
    });
    assert.equal(legacy.status, 400);
    const ok = await exchange(server, ui.id, good);
    assertOk(ok);
    await server.services.audit.flush();
    const rows = await server.services.db.query<{ content: AuditEvent }>(
      'SELECT content FROM audit_event_resource',
    );
    const mine = rows
      .map((r) => r.content)
      .filter(
        (e) =>
          e.subtype.some((c) => c.code === 'exchange') &&
          e.agent.some((a) => a.who?.reference === `ClientApplication/${ui.id}`),
      );
    assert.equal(mine.filter((e) => e.outcome === '4').length, 2, 'two failures');
    assert.equal(mine.filter((e) => e.outcome === '0').length, 1, 'one success');
    // The success names who the tokens went to and their Login (recorded when the tokens were made).
    const claims = decodeJwt(ok.body.access_token as string);
    const success = mine.find((e) => e.outcome === '0');
    assert.ok(
      success?.agent.some((a) => a.who?.reference === `User/${claims.sub}`),
      'the user is named',
    );
    assert.deepEqual(success?.entity, [{ what: { reference: `Login/${claims.login_id}` } }]);
    const text = JSON.stringify(mine);
    for (const secret of [good, rejected, ok.body.access_token as string, ok.body.refresh_token as string]) {
      assert.ok(!text.includes(secret), 'no token in the audit trail');
    }
  });
});
