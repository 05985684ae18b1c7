/**
 * Issue 4, protocol.md §3.2: fedhir's own federated sign-in, end to end against oidc-provider 9 on
 * 127.0.0.1. `GET /auth/external/start` (the app's client_id, redirect_uri, S256 challenge, state)
 * → 302 to the provider with an opaque state, fedhir's own nonce and PKCE challenge, and the
 * `fedhir_ext` cookie (RP-01, RP-02) → sign-in at the provider → `/auth/external` with that cookie →
 * 302 to the app with `code`, the app's `state` and `iss` (RP-48) → `POST /oauth2/token` with the
 * app's verifier → tokens.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IdentityProvider } from '../../src/model/types.ts';
import { ENGINES } from '../support/db.ts';
import {
  APP_REDIRECT,
  CookieJar,
  externalCallback,
  externalStart,
  FEDERATION_ENV,
  type IdpClientApp,
  idpClientApp,
  invite,
  newEmail,
} from '../support/federation.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { type IdpClient, signInAtIdp, startIdp, type TestIdp } from '../support/idp.ts';
import { assertT, jwtParts, pkcePair, randomState, token } from '../support/oauth-flows.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`§3.2 server-initiated external sign-in with oidc-provider on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let idp: TestIdp;
    let callbackUri: string;

    before(async () => {
      server = await startServer(engine, FEDERATION_ENV);
      fx = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      callbackUri = `${server.baseUrl}auth/external`;
      idp = await startIdp({ redirectUris: [callbackUri] });
    });
    after(async () => {
      await idp?.close();
      await server?.close();
    });

    function providerConfig(c: IdpClient, extra: Partial<IdentityProvider> = {}): IdentityProvider {
      return {
        issuer: idp.issuer,
        clientId: c.clientId,
        clientSecret: c.clientSecret,
        tokenAuthMethod: c.tokenAuthMethod,
        ...extra,
      };
    }

    /** The app's side: its PKCE pair, state and nonce, and the start request. */
    async function start(app: IdpClientApp, jar: CookieJar, extra: Record<string, string> = {}) {
      const pkce = pkcePair();
      const state = randomState();
      const nonce = randomState();
      const answer = await externalStart(
        server,
        {
          client_id: app.id,
          redirect_uri: app.redirectUri,
          code_challenge: pkce.challenge,
          code_challenge_method: 'S256',
          state,
          nonce,
          scope: 'openid offline_access',
          ...extra,
        },
        jar,
      );
      return { answer, pkce, state, nonce };
    }

    /** The whole browser round trip; answers fedhir's redirect to the app and what the app kept. */
    async function signIn(app: IdpClientApp, accountId: string) {
      const jar = new CookieJar();
      const started = await start(app, jar);
      assert.equal(started.answer.status, 302, started.answer.text);
      const back = await signInAtIdp(started.answer.location?.href ?? '', accountId, new CookieJar());
      assert.equal(`${back.origin}${back.pathname}`, callbackUri);
      const answer = await externalCallback(server, back, jar);
      assert.equal(answer.status, 302, answer.text);
      return { ...started, redirect: answer.location as URL, answer };
    }

    test('RP-01: the redirect to the provider carries its own opaque state, nonce and S256 challenge, and sets the binding cookie', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const jar = new CookieJar();
      const { answer, pkce, state } = await start(app, jar);
      assert.equal(answer.status, 302, answer.text);
      const url = answer.location as URL;
      assert.equal(`${url.origin}${url.pathname}`, idp.authorizeUrl);
      const q = url.searchParams;
      assert.equal(q.get('response_type'), 'code');
      assert.equal(q.get('client_id'), idp.basicClient.clientId);
      assert.equal(q.get('redirect_uri'), callbackUri);
      const scopes = (q.get('scope') ?? '').split(' ');
      assert.ok(scopes.includes('openid') && scopes.includes('email'), q.get('scope') ?? '');
      assert.equal(q.get('code_challenge_method'), 'S256');
      assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(q.get('code_challenge'), pkce.challenge, 'never the app challenge');
      const upstreamState = q.get('state') ?? '';
      assert.notEqual(upstreamState, state);
      assert.ok(!upstreamState.startsWith('{'), 'opaque, not the Medplum JSON');
      assert.ok(!upstreamState.includes(app.id) && !upstreamState.includes(state));
      assert.match(q.get('nonce') ?? '', /^[A-Za-z0-9_-]{43,}$/);
      // No secret of any kind in the URL.
      assert.ok(!url.href.includes(encodeURIComponent(idp.basicClient.clientSecret)));
      assert.ok(!url.href.includes(idp.basicClient.clientSecret));
      assert.ok(!url.href.includes(app.secret));
      assert.equal(q.get('client_secret'), null);
      // The binding cookie: HttpOnly, SameSite=Lax, scoped to the callback.
      const cookie = answer.headers.getSetCookie().find((c) => c.startsWith('fedhir_ext='));
      assert.ok(cookie, 'fedhir_ext cookie set');
      assert.match(cookie, /HttpOnly/i);
      assert.match(cookie, /SameSite=Lax/i);
      assert.match(cookie, /Path=\/auth\/external/);
    });

    test('RP-02: two starts in a row differ in state, nonce and upstream verifier (≥ 256 bits each)', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const seen = { state: new Set<string>(), nonce: new Set<string>(), challenge: new Set<string>() };
      const cookies = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const jar = new CookieJar();
        const { answer, pkce } = await start(app, jar);
        const q = (answer.location as URL).searchParams;
        seen.state.add(q.get('state') ?? '');
        seen.nonce.add(q.get('nonce') ?? '');
        seen.challenge.add(q.get('code_challenge') ?? '');
        assert.notEqual(q.get('code_challenge'), pkce.challenge);
        cookies.add(jar.header(callbackUri) ?? '');
        for (const value of [q.get('state'), q.get('nonce')]) {
          // base64url of 32 random bytes: 43 characters.
          assert.ok((value ?? '').length >= 43, `${value} is long enough`);
        }
      }
      assert.equal(seen.state.size, 2);
      assert.equal(seen.nonce.size, 2);
      assert.equal(seen.challenge.size, 2);
      assert.equal(cookies.size, 2);
    });

    for (const which of ['basic', 'post', 'pkce'] as const) {
      test(`RP-48: the app gets code, its own state and iss; the code yields tokens (${which})`, async () => {
        const idpClient = { basic: idp.basicClient, post: idp.postClient, pkce: idp.pkceClient }[which];
        const app = await idpClientApp(server, fx, providerConfig(idpClient));
        const email = newEmail(which);
        const membership = await invite(server, fx, { email });
        const sub = idp.account(email);
        const { redirect, pkce, state, nonce } = await signIn(app, sub);
        assert.equal(`${redirect.origin}${redirect.pathname}`, APP_REDIRECT);
        assert.equal(redirect.searchParams.get('state'), state);
        assert.equal(redirect.searchParams.get('iss'), server.baseUrl);
        const code = redirect.searchParams.get('code') ?? '';
        assert.ok(code.length >= 22);

        const tokens = await token(server, {
          grant_type: 'authorization_code',
          code,
          code_verifier: pkce.verifier,
          client_id: app.id,
          redirect_uri: app.redirectUri,
        });
        assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
        assert.equal(tokens.headers.get('cache-control'), 'no-store');
        const idToken = jwtParts(String(tokens.body.id_token));
        assert.equal(idToken.payload.nonce, nonce, "the app's nonce, not fedhir's upstream one");
        assert.equal(idToken.payload.aud, app.id);
        assert.equal(idToken.payload.iss, server.baseUrl);
        const me = await call(server, 'GET', '/auth/me', { token: String(tokens.body.access_token) });
        assert.equal(me.status, 200);
        assert.equal(me.body.membership.id, membership.id);

        // Single use: the second redemption fails (and revokes what the first issued).
        const again = await token(server, {
          grant_type: 'authorization_code',
          code,
          code_verifier: pkce.verifier,
          client_id: app.id,
          redirect_uri: app.redirectUri,
        });
        assertT(again, 'invalid_grant');
      });
    }

    test("RP-48: the code is bound to the app's PKCE verifier, its client and its redirect_uri", async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.postClient), {}, [
        APP_REDIRECT,
        'https://app.example.com/other',
      ]);
      const other = await idpClientApp(server, fx, providerConfig(idp.postClient));
      const email = newEmail('bound');
      await invite(server, fx, { email });
      const sub = idp.account(email);
      const redeem = async (form: Record<string, string>) => {
        const { redirect, pkce } = await signIn(app, sub);
        return token(server, {
          grant_type: 'authorization_code',
          code: redirect.searchParams.get('code') ?? '',
          code_verifier: pkce.verifier,
          client_id: app.id,
          redirect_uri: app.redirectUri,
          ...form,
        });
      };
      assertT(await redeem({ code_verifier: pkcePair().verifier }), 'invalid_grant');
      assertT(await redeem({ client_id: other.id }), 'invalid_grant');
      assertT(await redeem({ redirect_uri: 'https://app.example.com/other' }), 'invalid_grant');
      assert.equal((await redeem({})).status, 200);
    });

    test('the callback in another browser (no fedhir_ext cookie) is refused and the flow stays usable', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const email = newEmail('other-browser');
      await invite(server, fx, { email });
      const sub = idp.account(email);
      const jar = new CookieJar();
      const { answer } = await start(app, jar);
      const back = await signInAtIdp(answer.location?.href ?? '', sub, new CookieJar());
      const tokenCalls = idp.counts.token;
      const elsewhere = await externalCallback(server, back, new CookieJar());
      assert.equal(elsewhere.status, 400);
      assert.equal(elsewhere.location, undefined);
      assert.equal(idp.counts.token, tokenCalls, 'no code redemption for a foreign browser');
      const mine = await externalCallback(server, back, jar);
      assert.equal(mine.status, 302, mine.text);
    });
  });
}
