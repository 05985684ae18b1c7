/**
 * security-cases §1 (RP-01 … RP-52) and RB-10, RB-11, RB-15 against a real fedhir and a deliberately
 * misbehaving provider (test/support/tampering-idp.ts), all on loopback. Expected results are the
 * catalogue's, as protocol.md refines them (the spec wins):
 *
 * - CB✗ (§0): `GET /auth/external` answers a 400 page, does not redirect, stores no Login, and makes
 *   no later call to the provider — asserted on the provider's per-endpoint counters.
 * - The §3.1 flow (Medplum's JSON `state`) is held to the cases as far as its documented limit (a)
 *   allows (protocol.md §3.1): PKCE in `state` protects the app; mix-up is caught by RFC 9207 `iss`.
 * - Address cases (RP-49) configure private, link-local and public addresses only where the check runs
 *   before any connection (save-time validation); connect-time cases use 127.0.0.2 and [::1], outside
 *   the allow list, with a canary listening there that must see no connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import type { StoredClient } from '../../src/oauth/clients.ts';
import { canListen, selfSignedCertificate, startHttpsServer } from '../outbound/loopback-servers.ts';
import { ENGINES } from '../support/db.ts';
import {
  APP_REDIRECT,
  accessPolicy,
  CookieJar,
  externalCallback,
  externalStart,
  FEDERATION_ENV,
  type IdpClientApp,
  idpClientApp,
  invite,
  legacyState,
  linksOf,
  loginCount,
  newEmail,
  type PageAnswer,
  updateClient,
} from '../support/federation.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import {
  assertT,
  jwtParts,
  pkcePair,
  randomState,
  token,
  withLastCharacterChanged,
} from '../support/oauth-flows.ts';
import { call, startServer, type TestServer, tokenForMembership } from '../support/server.ts';
import {
  type Canary,
  type Counts,
  type Scenario,
  startCanary,
  startTamperingIdp,
  type TamperingIdp,
} from '../support/tampering-idp.ts';

type Snapshot = Counts & { logins: number };

const now = () => Math.floor(Date.now() / 1000);

/** The message of fedhir's error page. */
const alertOf = (answer: PageAnswer) => /role="alert">([^<]*)</.exec(answer.text)?.[1] ?? '';

for (const engine of ENGINES) {
  describe(`RP-* cases: fedhir as relying party against a tampering provider on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    /** Another project, whose admin configured another provider (mix-up, RP-13, RP-45). */
    let fx2: ProjectFixture;
    /** The main provider; it also advertises JWT userinfo with `none` (as some do), for RP-40. */
    let idp: TamperingIdp;
    /** A second provider (RP-13, RP-14). */
    let idpB: TamperingIdp;
    /** The e-mail-mode client on `idp` (client_secret_basic). */
    let app: IdpClientApp;
    /** A client on `idp` authenticating with client_secret_post. */
    let appPost: IdpClientApp;
    /** A client of the other project on `idpB`. */
    let appB2: IdpClientApp;
    /** An invited user; at every provider her `sub` is the same (a second `sub` would be RP-43). */
    let alice: { email: string; sub: string; membership: ProjectMembership };
    let callbackUri: string;
    const peers: Array<{ close(): Promise<void> }> = [];

    function config(p: TamperingIdp, extra: Partial<IdentityProvider> = {}): IdentityProvider {
      return { issuer: p.issuer, clientId: p.clientId, clientSecret: p.clientSecret, ...extra };
    }

    /** A fresh provider (own discovery and JWKS caches at fedhir) with a client on it. */
    async function freshProvider(options: Parameters<typeof startTamperingIdp>[0] = {}) {
      const p = await startTamperingIdp(options);
      peers.push(p);
      const a = await idpClientApp(server, fx, config(p));
      return { p, app: a };
    }

    before(async () => {
      server = await startServer(engine, FEDERATION_ENV);
      callbackUri = `${server.baseUrl}auth/external`;
      fx = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      fx2 = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      idp = await startTamperingIdp({
        metadata: { userinfo_signing_alg_values_supported: ['RS256', 'none'] },
      });
      idp.jwks.ec = true;
      idpB = await startTamperingIdp({ clientId: 'fedhir-b' });
      peers.push(idp, idpB);
      app = await idpClientApp(server, fx, config(idp));
      appPost = await idpClientApp(server, fx, config(idp, { tokenAuthMethod: 'client_secret_post' }));
      appB2 = await idpClientApp(server, fx2, config(idpB));
      const email = newEmail('alice');
      alice = { email, sub: `alice-${randomState()}`, membership: await invite(server, fx, { email }) };
    });
    after(async () => {
      for (const peer of peers) await peer.close();
      await server?.close();
    });

    async function snapshot(p: TamperingIdp = idp): Promise<Snapshot> {
      return { ...p.counts, logins: await loginCount(server) };
    }

    /** CB✗: 400 page, no redirect, no Login, and the listed provider endpoints not hit since `before`. */
    async function assertCB(
      answer: PageAnswer,
      before: Snapshot,
      notHit: Array<keyof Counts>,
      p: TamperingIdp = idp,
    ): Promise<void> {
      assert.equal(answer.status, 400, alertOf(answer) || answer.text.slice(0, 300));
      assert.equal(answer.location, undefined, 'no redirect');
      assert.match(answer.headers.get('content-type') ?? '', /text\/html/);
      assert.doesNotMatch(answer.text, /code=/);
      assert.equal(await loginCount(server), before.logins, 'no Login stored');
      for (const endpoint of notHit) {
        assert.equal(p.counts[endpoint], before[endpoint], `the ${endpoint} endpoint is not hit`);
      }
    }

    /** Accepted: 302 to the app's registered redirect URI with a code. */
    function assertAccepted(answer: PageAnswer, redirectUri = APP_REDIRECT): URL {
      assert.equal(answer.status, 302, alertOf(answer) || answer.text.slice(0, 300));
      const location = answer.location as URL;
      assert.equal(`${location.origin}${location.pathname}`, redirectUri);
      assert.ok(location.searchParams.get('code'));
      return location;
    }

    /** The §3.1 `state` of an app (Medplum's LoginRequest JSON) with a fresh S256 challenge. */
    function stateOf(a: IdpClientApp, extra: Record<string, unknown> = {}, project = fx): string {
      return legacyState({
        projectId: project.project.id,
        clientId: a.id,
        redirectUri: a.redirectUri,
        codeChallenge: pkcePair().challenge,
        codeChallengeMethod: 'S256',
        ...extra,
      });
    }

    /** §3.1: the provider redirects to fedhir with a code of `scenario` and Medplum's JSON state. */
    function legacy(
      scenario: Scenario = {},
      options: {
        app?: IdpClientApp;
        p?: TamperingIdp;
        query?: Record<string, string | string[] | undefined>;
      } = {},
    ): Promise<PageAnswer> {
      const p = options.p ?? idp;
      const a = options.app ?? app;
      return externalCallback(server, {
        code: p.code(scenario),
        state: stateOf(a),
        iss: p.issuer,
        ...options.query,
      });
    }

    /** A scenario whose account is alice (so mapping succeeds when everything else does). */
    const asAlice = (scenario: Scenario = {}): Scenario => ({
      ...scenario,
      account: { sub: alice.sub, email: alice.email, ...scenario.account },
    });

    /** §3.2: start in a fresh browser, pass the provider's front channel with `scenario`. */
    async function startFlow(a: IdpClientApp = app, p: TamperingIdp = idp, scenario: Scenario = {}) {
      const jar = new CookieJar();
      const pkce = pkcePair();
      const state = randomState();
      const started = await externalStart(
        server,
        {
          client_id: a.id,
          redirect_uri: a.redirectUri,
          code_challenge: pkce.challenge,
          code_challenge_method: 'S256',
          state,
        },
        jar,
      );
      assert.equal(started.status, 302, started.text.slice(0, 400));
      const authorizeUrl = started.location as URL;
      const callback = await p.authorize(authorizeUrl, scenario);
      return { jar, pkce, state, started, authorizeUrl, callback };
    }

    /** §3.2 in full: start, provider, callback in the same browser. */
    async function serverFlow(scenario: Scenario = {}, a: IdpClientApp = app, p: TamperingIdp = idp) {
      const flow = await startFlow(a, p, scenario);
      const answer = await externalCallback(server, flow.callback, flow.jar);
      return { ...flow, answer };
    }

    // ----- 1a. Outbound authorization request -----

    test('RP-01: 302 to the authorization endpoint with code, openid email scope, state, nonce, S256, our redirect_uri, no secret', async () => {
      const { authorizeUrl, started } = await startFlow();
      assert.equal(`${authorizeUrl.origin}${authorizeUrl.pathname}`, idp.authorizeUrl);
      const q = authorizeUrl.searchParams;
      assert.equal(q.get('response_type'), 'code');
      assert.equal(q.get('client_id'), idp.clientId);
      assert.equal(q.get('redirect_uri'), callbackUri);
      const scope = (q.get('scope') ?? '').split(' ');
      assert.ok(scope.includes('openid') && scope.includes('email'));
      assert.ok(q.get('state'));
      assert.ok(q.get('nonce'));
      assert.equal(q.get('code_challenge_method'), 'S256');
      assert.ok(q.get('code_challenge'));
      for (const secret of [idp.clientSecret, encodeURIComponent(idp.clientSecret), app.secret]) {
        assert.ok(!authorizeUrl.href.includes(secret), 'no secret in the URL');
      }
      assert.ok(started.headers.getSetCookie().some((c) => c.startsWith('fedhir_ext=')));
    });

    test('RP-02: state, nonce and the upstream verifier are fresh per start, ≥128 bits, and the verifier is server-side', async () => {
      const a = await startFlow(app, idp, asAlice());
      const b = await startFlow(app, idp, asAlice());
      const qa = a.authorizeUrl.searchParams;
      const qb = b.authorizeUrl.searchParams;
      for (const name of ['state', 'nonce', 'code_challenge']) {
        assert.notEqual(qa.get(name), qb.get(name), name);
        // base64url: ≥ 22 characters carry ≥ 128 bits.
        assert.ok((qa.get(name) ?? '').length >= 22, name);
      }
      assert.notEqual(qa.get('code_challenge'), a.pkce.challenge, 'not the app challenge');
      // The verifier never appears in a URL; it reaches the provider only in the token request body,
      // and hashes to the challenge of the authorization request.
      const answer = await externalCallback(server, a.callback, a.jar);
      assertAccepted(answer);
      const tokenRequest = idp.hits('/token').at(-1);
      const verifier = new URLSearchParams(tokenRequest?.body).get('code_verifier') ?? '';
      assert.ok(verifier.length >= 43);
      const { createHash } = await import('node:crypto');
      assert.equal(createHash('sha256').update(verifier).digest('base64url'), qa.get('code_challenge'));
      assert.ok(!a.authorizeUrl.href.includes(verifier));
      assert.ok(!(answer.location?.href ?? '').includes(verifier));
      assert.notEqual(verifier, a.pkce.verifier);
    });

    // ----- 1b. Callback, state, CSRF, code injection -----

    test('RP-03: a callback without state, or without code, is CB✗ and the token endpoint is not called', async () => {
      const before = await snapshot();
      await assertCB(await externalCallback(server, { code: idp.code(), iss: idp.issuer }), before, [
        'token',
      ]);
      const flow = await startFlow();
      const noCode = new URL(flow.callback);
      noCode.searchParams.delete('code');
      await assertCB(await externalCallback(server, noCode, flow.jar), before, ['token']);
      await assertCB(await externalCallback(server, { state: stateOf(app), iss: idp.issuer }), before, [
        'token',
      ]);
      await assertCB(await externalCallback(server, {}), before, ['token']);
    });

    test('RP-04: an unknown or forged state is CB✗', async () => {
      const flow = await startFlow();
      const before = await snapshot();
      for (const state of [randomState(), 'a'.repeat(43), `${flow.callback.searchParams.get('state')}x`]) {
        const forged = new URL(flow.callback);
        forged.searchParams.set('state', state);
        await assertCB(await externalCallback(server, forged, flow.jar), before, ['token']);
      }
    });

    test('RP-05: a tampered state is CB✗ (opaque handle in §3.2; in §3.1 every edit the server can see)', async () => {
      const before = await snapshot();
      // §3.2: the handle is opaque and server-side: any edit finds nothing.
      const flow = await startFlow();
      const handle = flow.callback.searchParams.get('state') ?? '';
      const edited = new URL(flow.callback);
      edited.searchParams.set('state', withLastCharacterChanged(handle));
      await assertCB(await externalCallback(server, edited, flow.jar), before, ['token']);
      // §3.1: edits of projectId or redirectUri are refused before the code is redeemed …
      const code = () => idp.code(asAlice());
      for (const state of [
        stateOf(app, { projectId: fx2.project.id }),
        stateOf(app, { redirectUri: 'https://evil.example.com/callback' }),
        stateOf(app, { codeChallengeMethod: 'plain' }),
        stateOf(app, { clientId: '00000000-0000-4000-8000-000000000000' }),
      ]) {
        await assertCB(await externalCallback(server, { code: code(), state, iss: idp.issuer }), before, [
          'token',
        ]);
      }
      // … and a clientId swapped for a client of another provider sends the code nowhere: the
      // provider's `iss` does not name that client's provider (RFC 9207).
      const beforeB = await snapshot(idpB);
      const swapped = await externalCallback(server, {
        code: code(),
        state: stateOf(appB2, {}, fx2),
        iss: idp.issuer,
      });
      await assertCB(swapped, beforeB, ['token', 'userinfo'], idpB);
      assert.equal(idp.counts.token, before.token);
      // An admin can turn the readable JSON state off for a client (legacyExternalState: false).
      const strict = await idpClientApp(server, fx, config(idp), { legacyExternalState: false });
      await assertCB(await legacy(asAlice(), { app: strict }), before, ['token']);
    });

    test('RP-06: a state replayed after a completed login, or presented after its TTL, is CB✗', async () => {
      const flow = await startFlow(app, idp, asAlice());
      assertAccepted(await externalCallback(server, flow.callback, flow.jar));
      const before = await snapshot();
      const replay = new URL(flow.callback);
      replay.searchParams.set('code', idp.code(asAlice()));
      await assertCB(await externalCallback(server, replay, flow.jar), before, ['token']);

      const late = await startFlow(app, idp, asAlice());
      await server.database.db.query(
        "UPDATE external_flow SET expires_at = now() - interval '1 second' WHERE consumed_at IS NULL",
      );
      await assertCB(await externalCallback(server, late.callback, late.jar), before, ['token']);
    });

    test('RP-07: a valid state in another browser session (cookie missing or of another flow) is CB✗', async () => {
      const victim = await startFlow(app, idp, asAlice());
      const other = await startFlow(app, idp, asAlice());
      const before = await snapshot();
      await assertCB(await externalCallback(server, victim.callback, new CookieJar()), before, ['token']);
      await assertCB(await externalCallback(server, victim.callback, other.jar), before, ['token']);
      // The rightful browser still completes.
      assertAccepted(await externalCallback(server, victim.callback, victim.jar));
    });

    test('RP-08: an error response with a valid state shows an escaped message, consumes the state, calls no token endpoint', async () => {
      const flow = await startFlow();
      const before = await snapshot();
      const error = new URL(flow.callback);
      error.searchParams.delete('code');
      error.searchParams.set('error', 'access_denied');
      error.searchParams.set('error_description', '<script>alert(1)</script>');
      const answer = await externalCallback(server, error, flow.jar);
      await assertCB(answer, before, ['token']);
      assert.doesNotMatch(answer.text, /<script>alert/);
      const injected = new URL(error);
      injected.searchParams.set('error', '<img src=x onerror=alert(1)>');
      assert.doesNotMatch((await externalCallback(server, injected, flow.jar)).text, /<img src=x/);
      // The state is spent: the real code afterwards is refused.
      await assertCB(await externalCallback(server, flow.callback, flow.jar), before, ['token']);
    });

    test('RP-09: duplicated code, state or iss parameters are CB✗', async () => {
      const flow = await startFlow(app, idp, asAlice());
      const before = await snapshot();
      const q = flow.callback.searchParams;
      const base = { code: q.get('code') ?? '', state: q.get('state') ?? '', iss: q.get('iss') ?? '' };
      for (const name of ['code', 'state', 'iss'] as const) {
        const query: Record<string, string | string[]> = { ...base, [name]: [base[name], `${base[name]}2`] };
        await assertCB(await externalCallback(server, query, flow.jar), before, ['token']);
      }
      // The state was not consumed by the malformed attempts.
      assertAccepted(await externalCallback(server, flow.callback, flow.jar));
    });

    test("RP-10: an attacker's code injected into the victim's callback fails at the provider (PKCE) or on the nonce", async () => {
      // The attacker's own code, bound to the attacker's upstream challenge and nonce.
      const attacker = await startFlow(app, idp, asAlice());
      const victim = await startFlow(app, idp, asAlice());
      const before = await snapshot();
      const injected = new URL(victim.callback);
      injected.searchParams.set('code', attacker.callback.searchParams.get('code') ?? '');
      await assertCB(await externalCallback(server, injected, victim.jar), before, ['userinfo']);
      assert.equal(idp.counts.token, before.token + 1, 'the provider refused the verifier');

      // A provider that does not enforce PKCE: fedhir's nonce check catches the injection.
      const attacker2 = await startFlow(app, idp, asAlice({ ignorePkce: true }));
      const victim2 = await startFlow(app, idp, asAlice());
      const injected2 = new URL(victim2.callback);
      injected2.searchParams.set('code', attacker2.callback.searchParams.get('code') ?? '');
      const before2 = await snapshot();
      await assertCB(await externalCallback(server, injected2, victim2.jar), before2, ['userinfo']);
      assert.match(
        (await externalCallback(server, injected2, victim2.jar)).text,
        /expired|another browser/,
        'the victim state is spent',
      );
    });

    // ----- 1c. Mix-up and multi-IdP binding -----

    test('RP-11: a callback iss that is not the issuer recorded for this state is CB✗ before any token request', async () => {
      const before = await snapshot();
      for (const iss of [
        idpB.issuer,
        `${idp.issuer}/`,
        idp.issuer.toUpperCase(),
        'https://evil.example.com',
      ]) {
        const flow = await startFlow(app, idp, asAlice());
        const wrong = new URL(flow.callback);
        wrong.searchParams.set('iss', iss);
        await assertCB(await externalCallback(server, wrong, flow.jar), before, ['token']);
        // §3.1 too (RFC 9207 applies to every response fedhir receives).
        await assertCB(await legacy(asAlice(), { query: { iss } }), before, ['token']);
      }
    });

    test('RP-12: iss missing although the provider advertises authorization_response_iss_parameter_supported is CB✗', async () => {
      const flow = await startFlow(app, idp, asAlice());
      const before = await snapshot();
      const noIss = new URL(flow.callback);
      noIss.searchParams.delete('iss');
      await assertCB(await externalCallback(server, noIss, flow.jar), before, ['token']);
      await assertCB(await legacy(asAlice(), { query: { iss: undefined } }), before, ['token']);
      // Control: a provider that does not advertise it may omit iss.
      const quiet = await freshProvider({
        metadata: { authorization_response_iss_parameter_supported: false },
      });
      const email = newEmail('quiet');
      await invite(server, fx, { email });
      const q = await startFlow(quiet.app, quiet.p, { account: { email } });
      const without = new URL(q.callback);
      without.searchParams.delete('iss');
      assertAccepted(await externalCallback(server, without, q.jar));
    });

    test("RP-13: mix-up — a state bound to provider B with A's code (or the reverse) never sends the code to the other provider", async () => {
      const beforeA = await snapshot(idp);
      const beforeB = await snapshot(idpB);
      // The victim's browser started a sign-in at B (another project's provider) …
      const atB = await startFlow(appB2, idpB);
      // … and the attacker makes honest provider A answer to it.
      const mixed = new URL(atB.callback);
      mixed.searchParams.set('code', idp.code(asAlice()));
      mixed.searchParams.set('iss', idp.issuer);
      await assertCB(await externalCallback(server, mixed, atB.jar), beforeB, ['token', 'userinfo'], idpB);
      const stripped = new URL(mixed);
      stripped.searchParams.delete('iss');
      await assertCB(await externalCallback(server, stripped, atB.jar), beforeB, ['token', 'userinfo'], idpB);
      assert.equal(idp.counts.token, beforeA.token, "A's code went nowhere");
      // The reverse: a state bound to A with B's code and iss.
      const atA = await startFlow(app, idp);
      const reverse = new URL(atA.callback);
      reverse.searchParams.set('code', idpB.code());
      reverse.searchParams.set('iss', idpB.issuer);
      await assertCB(await externalCallback(server, reverse, atA.jar), beforeA, ['token', 'userinfo']);
      assert.equal(idpB.counts.token, beforeB.token);
    });

    test('RP-14: the same sub from providers A and B gives two distinct local identities (key = issuer + sub)', async () => {
      const appB = await idpClientApp(server, fx, config(idpB));
      const sub = `shared-${randomState()}`;
      const carol = { email: newEmail('carol') };
      const bob = { email: newEmail('bob') };
      const carolMembership = await invite(server, fx, carol);
      const bobMembership = await invite(server, fx, bob);
      assertAccepted(await legacy({ account: { sub, email: carol.email } }));
      assertAccepted(await legacy({ account: { sub, email: bob.email } }, { app: appB, p: idpB }));
      assert.deepEqual(
        (await linksOf(server, carolMembership.id)).map((l) => [l.provider, l.subject]),
        [[idp.issuer, sub]],
      );
      assert.deepEqual(
        (await linksOf(server, bobMembership.id)).map((l) => [l.provider, l.subject]),
        [[idpB.issuer, sub]],
      );

      // useSubject: the membership with externalId = sub, linked to A, is not reachable from B.
      const subjectA = await idpClientApp(server, fx, config(idp, { useSubject: true }));
      const subjectB = await idpClientApp(server, fx, config(idpB, { useSubject: true }));
      const externalId = `ext-${randomState()}`;
      await invite(server, fx, { externalId });
      assertAccepted(await legacy({ account: { sub: externalId, email: undefined } }, { app: subjectA }));
      const before = await snapshot(idpB);
      const fromB = await legacy(
        { account: { sub: externalId, email: undefined } },
        { app: subjectB, p: idpB },
      );
      await assertCB(fromB, before, [], idpB);
      assert.match(fromB.text, /linked to another identity provider/);
    });

    // ----- 1d. Server → IdP token request -----

    test('RP-15: the upstream token request: form POST, code, exact redirect_uri, code_verifier, one client authentication, form-encoded Basic', async () => {
      assert.match(idp.clientSecret, /[:%+é]/);
      const { answer } = await serverFlow(asAlice());
      assertAccepted(answer);
      const request = idp.hits('/token').at(-1);
      assert.ok(request);
      assert.equal(request.method, 'POST');
      assert.match(String(request.headers['content-type']), /^application\/x-www-form-urlencoded/);
      const form = new URLSearchParams(request.body);
      assert.equal(form.get('grant_type'), 'authorization_code');
      assert.ok(form.get('code'));
      assert.equal(form.get('redirect_uri'), callbackUri);
      assert.ok(form.get('code_verifier'));
      assert.equal(form.get('client_secret'), null, 'Basic only: no secret in the body');
      const basic = String(request.headers.authorization);
      assert.match(basic, /^Basic /);
      const [id = '', secret = ''] = Buffer.from(basic.slice(6), 'base64').toString('utf8').split(':');
      const decode = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
      assert.equal(decode(id), idp.clientId);
      assert.equal(decode(secret), idp.clientSecret);
      assert.notEqual(secret, idp.clientSecret, 'form-urlencoded before base64 (RFC 6749 §2.3.1)');

      assertAccepted(await legacy(asAlice(), { app: appPost }));
      const post = idp.hits('/token').at(-1);
      assert.equal(post?.headers.authorization, undefined, 'client_secret_post: no Authorization header');
      const postForm = new URLSearchParams(post?.body);
      assert.equal(postForm.get('client_id'), idp.clientId);
      assert.equal(postForm.get('client_secret'), idp.clientSecret);
      assert.equal(postForm.get('redirect_uri'), callbackUri);
    });

    test('RP-16: the provider refusing the code (400 invalid_grant) is CB✗ with a generic message; its body is not echoed', async () => {
      const before = await snapshot();
      const answer = await legacy({
        token: {
          kind: 'status',
          status: 400,
          body: JSON.stringify({ error: 'invalid_grant', error_description: 'upstream-secret-detail-42' }),
        },
      });
      await assertCB(answer, before, ['userinfo', 'jwks']);
      assert.doesNotMatch(answer.text, /upstream-secret-detail-42/);
    });

    test('RP-17: a token response that is HTML, invalid JSON, a JSON array or lacks id_token is CB✗ (400, never 500)', async () => {
      const before = await snapshot();
      const faults: Scenario[] = [
        { token: { kind: 'body', contentType: 'text/html', body: '<html>hello</html>' } },
        { token: { kind: 'body', contentType: 'application/json', body: '{"access_token":' } },
        { token: { kind: 'json', value: [{ access_token: 'x', token_type: 'Bearer' }] } },
        asAlice({ idToken: 'omit' }),
      ];
      for (const scenario of faults) await assertCB(await legacy(scenario), before, ['userinfo']);
    });

    test('RP-18: token_type is compared case-insensitively (bearer, BEARER accepted); DPoP is CB✗', async () => {
      assertAccepted(await legacy(asAlice({ tokenFields: { token_type: 'bearer' } })));
      assertAccepted(await legacy(asAlice({ tokenFields: { token_type: 'BEARER' } })));
      const before = await snapshot();
      await assertCB(await legacy(asAlice({ tokenFields: { token_type: 'DPoP' } })), before, ['userinfo']);
      await assertCB(
        await legacy(asAlice({ tokenFields: { token_type: 'DPoP' }, idToken: { withAccountClaims: false } })),
        before,
        ['userinfo'],
      );
    });

    test('RP-19: a token endpoint that hangs, drips, sends 20 MB or a gzip bomb is aborted → CB✗', async () => {
      const before = await snapshot();
      const answers = await Promise.all([
        legacy({ token: { kind: 'hang' } }),
        legacy({ token: { kind: 'drip' } }),
        legacy({ token: { kind: 'large', bytes: 20 * 1024 * 1024 } }),
        legacy({ token: { kind: 'gzip-bomb', bytes: 20 * 1024 * 1024 } }),
      ]);
      for (const answer of answers) await assertCB(answer, before, ['userinfo', 'jwks']);
    });

    // ----- 1e. ID token validation -----

    /** An ID-token fault via §3.1; the account is alice, so only the fault can make it fail. */
    async function idTokenRejected(spec: Scenario['idToken'], extra: Scenario = {}) {
      const before = await snapshot();
      const answer = await legacy(asAlice({ ...extra, idToken: spec }));
      await assertCB(answer, before, ['userinfo']);
      return answer;
    }

    test('RP-20: an invalid signature (RS256, HS256, ES256) is CB✗; a valid RS256 token is accepted', async () => {
      assertAccepted(await legacy(asAlice({ idToken: { sign: 'good' } })));
      await idTokenRejected({ sign: 'bad-signature' });
      await idTokenRejected({ sign: 'hs256-pem', flip: true });
      await idTokenRejected({ sign: 'es256', flip: true });
    });

    test('RP-21: alg none with an empty signature is CB✗', async () => {
      await idTokenRejected({ sign: 'none' });
    });

    test("RP-22: HS256 MAC'd with the provider's RSA public key (PEM or JWK) is CB✗", async () => {
      await idTokenRejected({ sign: 'hs256-pem' });
      await idTokenRejected({ sign: 'hs256-jwk' });
    });

    test('RP-23: a valid signature with an algorithm that is not configured (RS384, ES256) is CB✗', async () => {
      await idTokenRejected({ sign: 'rs384' });
      await idTokenRejected({ sign: 'es256' });
    });

    test('RP-24: jku, x5u and jwk headers are never followed; odd or unknown kids are CB✗', async () => {
      const attackerFetches = idp.counts.attackerJwks;
      await idTokenRejected({ sign: 'attacker-key', header: { jku: idp.attackerJwksUrl } });
      await idTokenRejected({ sign: 'attacker-key', header: { x5u: `${idp.attackerJwksUrl}.pem` } });
      await idTokenRejected({
        sign: 'attacker-key',
        header: { jwk: idp.attackerPublicJwk, kid: 'attacker' },
      });
      await idTokenRejected({ sign: 'good', header: { kid: '../../dev/null' } });
      await idTokenRejected({ sign: 'good', header: { kid: "' OR 1=1--" } });
      assert.equal(idp.counts.attackerJwks, attackerFetches, 'header URLs are never fetched');
      assert.equal(idp.hits('/attacker-jwks.pem').length, 0);
    });

    test('RP-25: no kid and a JWKS with one key: accepted', async () => {
      const { p, app: a } = await freshProvider();
      assertAccepted(await legacy(asAlice({ idToken: { header: { kid: undefined } } }), { app: a, p }));
    });

    test('RP-26: no kid and a JWKS with several keys: rejected (documented), 400 not 500', async () => {
      const { p, app: a } = await freshProvider();
      p.jwks.rsa = ['k1', 'k2'];
      const before = await snapshot(p);
      const answer = await legacy(asAlice({ idToken: { header: { kid: undefined } } }), { app: a, p });
      await assertCB(answer, before, ['userinfo'], p);
      // With a kid, the same key set works.
      assertAccepted(await legacy(asAlice(), { app: a, p }));
    });

    test('RP-27: a rotated key is found with one JWKS refetch; a spray of unknown kids refetches at most once', async () => {
      const { p, app: a } = await freshProvider();
      assertAccepted(await legacy(asAlice(), { app: a, p }));
      const afterFirst = p.counts.jwks;
      assertAccepted(await legacy(asAlice(), { app: a, p }));
      assert.equal(p.counts.jwks, afterFirst, 'the key set is cached');
      // Rotation: the provider now signs with k2 and publishes it.
      p.jwks.rsa = ['k2'];
      assertAccepted(await legacy(asAlice({ idToken: { key: 'k2' } }), { app: a, p }));
      assert.equal(p.counts.jwks, afterFirst + 1, 'one refetch');
      // Still unknown after the refetch: CB✗; a spray does not hammer the provider.
      const before = await snapshot(p);
      for (let i = 0; i < 4; i++) {
        const answer = await legacy(asAlice({ idToken: { header: { kid: `random-${randomState()}` } } }), {
          app: a,
          p,
        });
        await assertCB(answer, before, ['userinfo'], p);
      }
      assert.ok(p.counts.jwks - before.jwks <= 1, `${p.counts.jwks - before.jwks} refetches`);
    });

    test('RP-28: unparseable and unknown-kty keys in the JWKS are ignored; the good key verifies', async () => {
      const { p, app: a } = await freshProvider();
      p.jwks.extra = [
        { kty: 'RSA', kid: 'broken', n: '!!!not-base64!!!', e: 'AQAB' },
        { kty: 'FOO', kid: 'unknown-kty', x: 'y' },
        { kty: 'EC', kid: 'bad-curve', crv: 'P-999', x: 'AA', y: 'AA' },
      ];
      assertAccepted(await legacy(asAlice(), { app: a, p }));
    });

    test('RP-29: iss ≠ the configured issuer (other, trailing slash, case) is CB✗', async () => {
      for (const iss of [idpB.issuer, `${idp.issuer}/`, idp.issuer.replace('http', 'HTTP')]) {
        await idTokenRejected({ claims: { iss } });
      }
    });

    test('RP-30: sub or iat missing is CB✗', async () => {
      await idTokenRejected({ claims: { sub: undefined } });
      await idTokenRejected({ claims: { iat: undefined } });
    });

    test('RP-31: aud ≠ our client_id, or aud missing, is CB✗', async () => {
      await idTokenRejected({ claims: { aud: 'another-client' } });
      await idTokenRejected({ claims: { aud: undefined } });
    });

    test('RP-32: aud [client, other] without azp or with a foreign azp is CB✗; aud [client] is accepted', async () => {
      await idTokenRejected({ claims: { aud: [idp.clientId, 'other'] } });
      await idTokenRejected({ claims: { aud: [idp.clientId, 'other'], azp: 'other' } });
      assertAccepted(await legacy(asAlice({ idToken: { claims: { aud: [idp.clientId] } } })));
    });

    test('RP-33: exp in the past beyond leeway, exp missing, or nbf in the future is CB✗', async () => {
      await idTokenRejected({ claims: { exp: now() - 600 } });
      await idTokenRejected({ claims: { exp: undefined } });
      await idTokenRejected({ claims: { nbf: now() + 600 } });
    });

    test('RP-34: a nonce other than the one sent, or none although one was sent, is CB✗', async () => {
      for (const claims of [{ nonce: 'not-the-nonce' }, { nonce: undefined }]) {
        const before = await snapshot();
        const { answer } = await serverFlow(asAlice({ idToken: { claims } }));
        await assertCB(answer, before, ['userinfo']);
      }
    });

    test('RP-35: an ID token replayed from an earlier successful login is CB✗', async () => {
      const first = await serverFlow(asAlice());
      assertAccepted(first.answer);
      const firstCode = first.callback.searchParams.get('code') ?? '';
      assert.ok(idp.idTokenOf(firstCode));
      const before = await snapshot();
      const { answer } = await serverFlow(asAlice({ replayIdTokenOf: firstCode }));
      await assertCB(answer, before, ['userinfo']);
    });

    test('RP-36: a JWE ID token, or an unknown crit header, is CB✗', async () => {
      await idTokenRejected({ sign: 'jwe' });
      await idTokenRejected({ header: { crit: ['urn:example:unknown'], 'urn:example:unknown': true } });
    });

    test('RP-37: without issuer or jwksUrl the ID token is never trusted: identity comes from userinfo over TLS (pinned)', async () => {
      const noIssuer = await idpClientApp(server, fx, {
        authorizeUrl: idp.authorizeUrl,
        tokenUrl: idp.tokenUrl,
        userInfoUrl: idp.userInfoUrl,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
      });
      const mallory = newEmail('mallory');
      const malloryMembership = await invite(server, fx, { email: mallory });
      const jwks = idp.counts.jwks;
      // An unsigned ID token claiming to be mallory; userinfo (the fresh access token) says alice.
      const location = assertAccepted(
        await legacy(asAlice({ idToken: { sign: 'none', claims: { sub: 'mallory-sub', email: mallory } } }), {
          app: noIssuer,
        }),
      );
      assert.ok(location);
      assert.ok(
        (await linksOf(server, alice.membership.id)).some((l) =>
          l.provider.startsWith('urn:fedhir:provider:'),
        ),
      );
      assert.deepEqual(await linksOf(server, malloryMembership.id), []);
      assert.equal(idp.counts.jwks, jwks, 'no key source is consulted');
      // Userinfo refusing the token leaves nothing to trust: CB✗.
      const before = await snapshot();
      await assertCB(
        await legacy(asAlice({ userinfo: { fault: { kind: 'status', status: 401, body: '' } } }), {
          app: noIssuer,
        }),
        before,
        [],
      );
    });

    // ----- 1f. UserInfo -----

    test('RP-38: a userinfo sub other than the ID token sub is CB✗', async () => {
      const before = await snapshot();
      const answer = await legacy(
        asAlice({ idToken: { withAccountClaims: false }, userinfo: { claims: { sub: 'someone-else' } } }),
      );
      await assertCB(answer, before, []);
      assert.equal(idp.counts.userinfo, before.userinfo + 1);
    });

    test('RP-39: the access token goes to userinfo in the Authorization header only', async () => {
      assertAccepted(await legacy(asAlice({ idToken: { withAccountClaims: false } })));
      const request = idp.hits('/userinfo').at(-1);
      assert.ok(request);
      assert.match(String(request.headers.authorization), /^Bearer at-/);
      assert.equal(request.query.get('access_token'), null);
      assert.equal(new URLSearchParams(request.body).get('access_token'), null);
    });

    test('RP-40: a JWT userinfo with a bad signature or alg none is rejected, never parsed unverified', async () => {
      const userinfoOnly = { idToken: { withAccountClaims: false } } as const;
      for (const jwt of ['none', 'bad-signature', 'attacker-key'] as const) {
        const before = await snapshot();
        await assertCB(await legacy(asAlice({ ...userinfoOnly, userinfo: { jwt } })), before, []);
      }
      // Control: a properly signed JWT userinfo is accepted.
      assertAccepted(await legacy(asAlice({ ...userinfoOnly, userinfo: { jwt: 'good' } })));
    });

    // ----- 1g. Account mapping -----

    test("RP-41: email_verified false or absent with an existing user's e-mail: no login, no link", async () => {
      const email = newEmail('victim');
      const victim = await invite(server, fx, { email });
      for (const account of [
        { email, email_verified: false },
        { email, email_verified: undefined },
      ]) {
        const before = await snapshot();
        const answer = await legacy({ account });
        await assertCB(answer, before, []);
        assert.match(answer.text, /not verified/);
      }
      assert.deepEqual(await linksOf(server, victim.id), []);
      // An absent claim is allowed only where the admin said so (allowUnverifiedEmail).
      const lenient = await idpClientApp(server, fx, config(idp, { allowUnverifiedEmail: true }));
      assertAccepted(await legacy({ account: { email, email_verified: undefined } }, { app: lenient }));
      const before = await snapshot();
      await assertCB(
        await legacy({ account: { email, email_verified: false } }, { app: lenient }),
        before,
        [],
      );
    });

    test('RP-42: email_verified "false" (or any value but true / "true") is not truthy', async () => {
      // A user not linked yet: the e-mail is what would link her (a linked subject is found by
      // (issuer, sub) and needs no e-mail at all).
      const email = newEmail('verified');
      const member = await invite(server, fx, { email });
      for (const value of ['false', 'yes', 1, 'TRUE ', null, {}]) {
        const before = await snapshot();
        const answer = await legacy({ account: { email, email_verified: value } });
        await assertCB(answer, before, []);
        assert.match(alertOf(answer), /not verified/);
      }
      assert.deepEqual(await linksOf(server, member.id), []);
      assertAccepted(await legacy({ account: { email, email_verified: 'true' } }));
    });

    test('RP-43: a user linked to (iss, S1) is not reached by the same e-mail with sub S2 (recycled e-mail)', async () => {
      const email = newEmail('recycled');
      const member = await invite(server, fx, { email });
      const s1 = `s1-${randomState()}`;
      assertAccepted(await legacy({ account: { sub: s1, email } }));
      const before = await snapshot();
      const answer = await legacy({ account: { sub: `s2-${randomState()}`, email } });
      await assertCB(answer, before, []);
      assert.deepEqual(
        (await linksOf(server, member.id)).map((l) => l.subject),
        [s1],
      );
    });

    test('RP-44: a domain-restricted provider (DomainConfiguration) accepts only its exact domain, case-insensitively', async () => {
      const superToken = await tokenForMembership(server.services, server.adminMembership);
      const created = await call(server, 'POST', '/fhir/R4/DomainConfiguration', {
        token: superToken,
        body: {
          resourceType: 'DomainConfiguration',
          domain: 'example.com',
          project: { reference: `Project/${fx.project.id}` },
          identityProvider: config(idp),
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const lookalikes = ['a@evilexample.com', 'a@example.com.evil.com', 'a@sub.example.com'];

      // Home-realm discovery offers the provider to the exact domain only.
      for (const email of lookalikes) {
        assert.deepEqual((await call(server, 'POST', '/auth/method', { body: { email } })).body, {}, email);
      }
      const quoted = await call(server, 'POST', '/auth/method', {
        body: { email: '"a@example.com"@evil.com' },
      });
      assert.equal(quoted.status, 400);
      assert.equal(quoted.body.authorizeUrl, undefined);
      const upper = await call(server, 'POST', '/auth/method', { body: { email: 'a@EXAMPLE.COM' } });
      assert.equal(upper.body.domain, 'example.com');
      assert.ok(upper.body.authorizeUrl.startsWith(`${idp.authorizeUrl}?`));

      // The callback: the verified e-mail's domain must be the configured one — even for a subject
      // already linked to a member (alice's).
      const state = legacyState({ domain: 'example.com' });
      for (const email of [...lookalikes, '"a@example.com"@evil.com']) {
        const before = await snapshot();
        const answer = await externalCallback(server, {
          code: idp.code(asAlice({ account: { email } })),
          state,
          iss: idp.issuer,
        });
        await assertCB(answer, before, []);
        assert.match(alertOf(answer), /does not match domain|no valid e-mail/, email);
      }
      const accepted = await externalCallback(server, {
        code: idp.code(
          asAlice({ account: { email: alice.email.replace(/@example\.com$/, '@EXAMPLE.COM') } }),
        ),
        state,
        iss: idp.issuer,
      });
      assert.equal(accepted.status, 302, alertOf(accepted));
      assert.equal(`${accepted.location?.origin}${accepted.location?.pathname}`, `${server.baseUrl}signin`);
      assert.ok(accepted.location?.searchParams.get('login'));
    });

    test("RP-45: a verified e-mail of project A signing in through project B's client finds only B's memberships", async () => {
      const inB = await idpClientApp(server, fx2, config(idp));
      const before = await snapshot();
      const answer = await externalCallback(server, {
        code: idp.code(asAlice()),
        state: stateOf(inB, {}, fx2),
        iss: idp.issuer,
      });
      await assertCB(answer, before, []);
      assert.match(answer.text, /not found in this project/);
      // With just-in-time provisioning in B, alice gets a new identity in B, never A's membership.
      const jit = await idpClientApp(
        server,
        fx2,
        config(idp, {
          justInTimeProvisioning: true,
          justInTimeAccessPolicy: await accessPolicy(server, fx2),
        }),
      );
      const sub = `jit-${randomState()}`;
      const location = assertAccepted(
        await externalCallback(server, {
          code: idp.code(asAlice({ account: { sub } })),
          state: stateOf(jit, {}, fx2),
          iss: idp.issuer,
        }),
      );
      assert.ok(location);
      assert.ok(!(await linksOf(server, alice.membership.id)).some((l) => l.subject === sub));
    });

    // ----- 1h. Return to the app, SSRF -----

    test('RP-46: an app redirect URI that is not exactly registered is refused (no flow, no code)', async () => {
      const variants = [
        'https://app.example.com/call',
        `${APP_REDIRECT}/extra`,
        `${APP_REDIRECT}?x=1`,
        `${APP_REDIRECT}/`,
        'https://APP.example.com/callback',
        'https://app.example.com/CALLBACK',
        'https://app.example.com.evil.com/callback',
      ];
      const before = await snapshot();
      const flows = await server.database.db.query<{ n: string }>('SELECT count(*) AS n FROM external_flow');
      for (const redirectUri of variants) {
        const jar = new CookieJar();
        const started = await externalStart(
          server,
          {
            client_id: app.id,
            redirect_uri: redirectUri,
            code_challenge: pkcePair().challenge,
            code_challenge_method: 'S256',
            state: 'x',
          },
          jar,
        );
        assert.equal(started.status, 400, redirectUri);
        assert.equal(started.location, undefined);
        assert.equal(jar.header(callbackUri), undefined, 'no binding cookie');
        await assertCB(
          await externalCallback(server, {
            code: idp.code(asAlice()),
            state: stateOf(app, { redirectUri }),
            iss: idp.issuer,
          }),
          before,
          ['token'],
        );
      }
      const after = await server.database.db.query<{ n: string }>('SELECT count(*) AS n FROM external_flow');
      assert.equal(Number(after[0]?.n), Number(flows[0]?.n), 'no pending flow was created');
    });

    test('RP-47: returnTo in the state never redirects off-site', async () => {
      for (const returnTo of [
        'https://evil.com',
        '//evil.com',
        '/\\evil.com',
        'https://app.example.com.evil.com',
        'https://app.example.com@evil.com',
        'javascript:alert(1)',
      ]) {
        const answer = await externalCallback(server, {
          code: idp.code(asAlice()),
          state: stateOf(app, { returnTo }),
          iss: idp.issuer,
        });
        const location = assertAccepted(answer);
        assert.equal(`${location.origin}${location.pathname}`, APP_REDIRECT, returnTo);
        // Without a client (the domain flow) nothing redirects at all.
        const bare = await externalCallback(server, {
          code: idp.code(asAlice()),
          state: legacyState({ returnTo, projectId: fx.project.id }),
          iss: idp.issuer,
        });
        assert.equal(bare.status, 400);
        assert.equal(bare.location, undefined);
      }
    });

    test("RP-48: the final redirect carries the app's state, our code and iss; the code is single use and bound", async () => {
      const { answer, state, pkce } = await serverFlow(asAlice());
      const location = assertAccepted(answer);
      assert.equal(location.searchParams.get('state'), state);
      assert.equal(location.searchParams.get('iss'), server.baseUrl);
      const form = {
        grant_type: 'authorization_code',
        code: location.searchParams.get('code') ?? '',
        code_verifier: pkce.verifier,
        client_id: app.id,
        redirect_uri: APP_REDIRECT,
      };
      const first = await token(server, form);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(jwtParts(String(first.body.access_token)).payload.client_id, app.id);
      assertT(await token(server, form), 'invalid_grant');
    });

    test('RP-49: private, loopback, link-local and metadata addresses are refused at save and at connect time', async (t) => {
      // Save time, on a fedhir with the production default (no allow list): the check is textual, no
      // connection is ever attempted.
      const strict = await startServer(engine, { ...FEDERATION_ENV, ALLOW_PRIVATE_IDP_URLS: '' });
      t.after(() => strict.close());
      const sfx = await createProjectFixture(strict, { redirectUris: [APP_REDIRECT] });
      const sapp = await idpClientApp(strict, sfx, {
        tokenUrl: 'https://idp.example.com/token',
        clientId: 'x',
      });
      const addresses = [
        'http://169.254.169.254/latest/meta-data/',
        'https://169.254.169.254/latest/meta-data/',
        'https://127.0.0.1:5432/',
        'https://[::1]/token',
        'https://0x7f000001/token',
        'https://2130706433/token',
        'https://[::ffff:127.0.0.1]/token',
        'https://10.0.0.5/token',
        'https://metadata.google.internal/computeMetadata/v1/',
        'https://localhost/token',
      ];
      for (const url of addresses) {
        for (const field of ['tokenUrl', 'userInfoUrl', 'jwksUrl'] as const) {
          const put = await updateClient(strict, sfx, sapp.id, {
            identityProvider: { tokenUrl: 'https://idp.example.com/token', clientId: 'x', [field]: url },
          });
          assert.equal(put.status, 400, `${field} ${url}`);
          assert.equal(put.body.resourceType, 'OperationOutcome');
        }
      }
      // The same on this server, for loopback addresses outside its allow list (127.0.0.1 only).
      for (const url of ['http://127.0.0.2:9/token', 'http://[::1]:9/token', 'http://0x7f000002/token']) {
        const put = await updateClient(server, fx, app.id, {
          identityProvider: { ...config(idp), clientSecret: undefined, tokenUrl: url },
        });
        assert.equal(put.status, 400, url);
      }

      // Connect time: an allowed provider whose discovery names 127.0.0.2 / [::1] endpoints. The
      // canaries listening there must see no connection.
      const canaries: Canary[] = [await startCanary('127.0.0.2')];
      if (await canListen('::1')) canaries.push(await startCanary('::1'));
      t.after(async () => {
        for (const c of canaries) await c.close();
      });
      /** The message per refused endpoint, across addresses: one message each, whatever the address. */
      const messages = new Map<string, Set<string>>();
      for (const canary of canaries) {
        for (const endpoint of ['token_endpoint', 'jwks_uri', 'userinfo_endpoint'] as const) {
          const path = { token_endpoint: '/token', jwks_uri: '/jwks', userinfo_endpoint: '/userinfo' }[
            endpoint
          ];
          const { p, app: a } = await freshProvider();
          p.metadata[endpoint] = `${canary.origin}${path}`;
          const scenario =
            endpoint === 'userinfo_endpoint' ? asAlice({ idToken: { withAccountClaims: false } }) : asAlice();
          const before = await snapshot(p);
          const answer = await legacy(scenario, { app: a, p });
          await assertCB(answer, before, [], p);
          assert.doesNotMatch(answer.text, /internal-service-body/);
          const seen = messages.get(endpoint) ?? new Set<string>();
          seen.add(alertOf(answer));
          messages.set(endpoint, seen);
        }
        assert.equal(canary.connections, 0, `${canary.origin} was never connected to`);
      }
      // A configuration stored before the allow list changed (written directly: the save-time check
      // would now refuse it) is refused at connect time too.
      const canary = canaries[0] as Canary;
      const direct = await idpClientApp(server, fx, config(idp));
      const raw = await server.services.repo.read<StoredClient>('ClientApplication', direct.id);
      assert.ok(raw?.identityProvider);
      const { issuer: _issuer, ...withoutIssuer } = raw.identityProvider;
      await server.services.repo.update<StoredClient>({
        ...raw,
        identityProvider: { ...withoutIssuer, tokenUrl: `${canary.origin}/token` },
      });
      server.services.clients.changed(direct.id);
      const before = await snapshot();
      const answer = await legacy(asAlice(), { app: direct });
      await assertCB(answer, before, []);
      assert.equal(canary.connections, 0);
      messages.get('token_endpoint')?.add(alertOf(answer));
      for (const [endpoint, seen] of messages) {
        assert.equal(seen.size, 1, `${endpoint}: ${[...seen].join(' | ')}`);
        assert.doesNotMatch([...seen][0] ?? '', /127\.0\.0\.2|::1|ECONN|status/);
      }
    });

    test('RP-50: http (not loopback-allowed), file:, data:, gopher: are refused at save; a self-signed TLS provider fails closed', async (t) => {
      for (const url of [
        'http://idp.example.com/token',
        'file:///etc/passwd',
        'data:application/json,{}',
        'gopher://idp.example.com/1',
        'ftp://idp.example.com/token',
      ]) {
        const put = await updateClient(server, fx, app.id, {
          identityProvider: { ...config(idp), clientSecret: undefined, tokenUrl: url },
        });
        assert.equal(put.status, 400, url);
      }
      const credentials = selfSignedCertificate('127.0.0.1');
      if (!credentials) {
        t.skip('openssl is not available');
        return;
      }
      const tls = await startHttpsServer('127.0.0.1', credentials, () => {});
      t.after(() => tls.close());
      const selfSigned = await idpClientApp(server, fx, {
        authorizeUrl: idp.authorizeUrl,
        tokenUrl: `${tls.origin}/token`,
        userInfoUrl: `${tls.origin}/userinfo`,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
      });
      const before = await snapshot();
      await assertCB(await legacy(asAlice(), { app: selfSigned }), before, []);
      assert.equal(tls.requests, 0, 'no HTTP request over the unverified connection');
    });

    test('RP-51: a provider answering 30x towards an internal address is not followed → CB✗', async (t) => {
      const canary = await startCanary('127.0.0.2');
      t.after(() => canary.close());
      const before = await snapshot();
      await assertCB(
        await legacy({ token: { kind: 'redirect', location: `${canary.origin}/latest/meta-data/` } }),
        before,
        ['userinfo'],
      );
      // A redirect to a loopback address that *is* allowed is not followed either.
      await assertCB(await legacy({ token: { kind: 'redirect', location: `${idp.origin}/token` } }), before, [
        'userinfo',
      ]);
      assert.equal(canary.connections, 0);
    });

    test('RP-52: discovery metadata whose issuer differs from the configured one is rejected', async () => {
      const p = await startTamperingIdp();
      peers.push(p);
      p.metadata.issuer = `${p.issuer}/other`;
      const a = await idpClientApp(server, fx, config(p));
      const started = await externalStart(
        server,
        {
          client_id: a.id,
          redirect_uri: APP_REDIRECT,
          code_challenge: pkcePair().challenge,
          code_challenge_method: 'S256',
        },
        new CookieJar(),
      );
      assert.equal(started.status, 400);
      assert.equal(started.location, undefined);
      const before = await snapshot(p);
      await assertCB(await legacy(asAlice(), { app: a, p }), before, ['token', 'userinfo', 'jwks'], p);
    });

    // ----- Robustness -----

    test('RB-10: the same callback delivered twice concurrently logs in once; the other is CB✗', async () => {
      const flow = await startFlow(app, idp, asAlice());
      const tokenCalls = idp.counts.token;
      const answers = await Promise.all([
        externalCallback(server, flow.callback, flow.jar),
        externalCallback(server, flow.callback, flow.jar),
      ]);
      assert.deepEqual(answers.map((a) => a.status).sort(), [302, 400]);
      assert.equal(idp.counts.token, tokenCalls + 1, 'the code was redeemed once');
    });

    test('RB-11: 60 s leeway — iat +30 s and exp −30 s accepted; iat +5 min, exp −5 min and exp = now − leeway rejected', async () => {
      assertAccepted(await legacy(asAlice({ idToken: { claims: { iat: now() + 30 } } })));
      assertAccepted(await legacy(asAlice({ idToken: { claims: { exp: now() - 30 } } })));
      assertAccepted(await legacy(asAlice({ idToken: { claims: { nbf: now() + 30 } } })));
      await idTokenRejected({ claims: { iat: now() + 300 } });
      await idTokenRejected({ claims: { exp: now() - 300 } });
      await idTokenRejected({ claims: { exp: now() - 60 } });
    });

    test('RB-15: pending sign-ins expire after 10 minutes and expired ones are purged as new ones start', async () => {
      await startFlow();
      const [row] = await server.database.db.query<{ ttl: number | string }>(
        'SELECT extract(epoch FROM expires_at - created_at) AS ttl FROM external_flow ORDER BY created_at DESC LIMIT 1',
      );
      assert.equal(Number(row?.ttl), 600);
      await server.database.db.query(
        "UPDATE external_flow SET expires_at = now() - interval '2 hours', created_at = now() - interval '3 hours'",
      );
      const expired = async () =>
        Number(
          (
            await server.database.db.query<{ n: string | number }>(
              'SELECT count(*) AS n FROM external_flow WHERE expires_at < now()',
            )
          )[0]?.n,
        );
      const before = await expired();
      assert.ok(before > 0);
      await startFlow();
      // Each start purges a bounded batch (100) of expired flows.
      assert.equal(await expired(), Math.max(0, before - 100), 'expired flows were purged');
    });
  });
}
