/**
 * Home-realm discovery and the domain flow (protocol.md §1 DomainConfiguration, §2 `POST
 * /auth/method`, `GET /auth/login/:login`, §3.1 "Without a client"), end to end against
 * oidc-provider 9 on 127.0.0.1:
 * `POST /auth/method {email}` → `{domain, authorizeUrl}` (exact domain only, RP-44) → the app adds its
 * JSON `state` with `domain` → sign-in at the provider → `/auth/external` maps the verified e-mail
 * within the DomainConfiguration's project → 302 `<BASE_URL>signin?login=<id>` with an HttpOnly
 * cookie binding the login to this browser → the hosted chooser (several memberships) or the
 * signed-in page. Also: the authorize page's "Continue with" button (§3.2), the AuditEvents of
 * external sign-in, and the per-IP budget of `/auth/external/start` (RB-15).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import { ENGINES } from '../support/db.ts';
import {
  APP_REDIRECT,
  CookieJar,
  externalCallback,
  externalStart,
  FEDERATION_ENV,
  idpClientApp,
  invite,
  linksOf,
  loginCount,
  type PageAnswer,
} from '../support/federation.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { type IdpClient, signInAtIdp, startIdp, type TestIdp } from '../support/idp.ts';
import {
  authorize,
  authorizeParams,
  hiddenFields,
  pkcePair,
  randomState,
  token,
} from '../support/oauth-flows.ts';
import { call, startServer, type TestServer, tokenForMembership } from '../support/server.ts';

const DOMAIN = 'example.com';

/** The message of fedhir's error page. */
const alertOf = (answer: { text: string }) =>
  /role="alert">([^<]*)</.exec(answer.text)?.[1] ?? answer.text.slice(0, 300);

/** The fields of a stored AuditEvent these tests read. */
interface AuditRow {
  outcome: string;
  outcomeDesc?: string;
  meta: { project?: string };
  entity?: { what: { reference: string } }[];
  agent: { who?: { reference: string }; network?: { address: string } }[];
}

interface LoginRow {
  id: string;
  client_id: string | null;
  membership_id: string | null;
  project_id: string | null;
  code_digest: string | null;
  code_challenge: string | null;
  auth_method: string;
  details: Record<string, unknown> | null;
}

async function loginRow(server: TestServer, id: string): Promise<LoginRow | undefined> {
  const rows = await server.database.db.query<LoginRow>('SELECT * FROM login WHERE id = $1', [id]);
  return rows[0];
}

/** A user of the domain, invited into `fx` (`times` memberships, each its own profile). */
async function domainUser(
  server: TestServer,
  fx: ProjectFixture,
  times = 1,
  email = `u.${randomState().slice(0, 10).toLowerCase()}@${DOMAIN}`,
): Promise<{ email: string; memberships: ProjectMembership[] }> {
  const memberships: ProjectMembership[] = [];
  for (let i = 0; i < times; i++) {
    memberships.push(await invite(server, fx, { email, firstName: `Profile${i + 1}` }));
  }
  return { email, memberships };
}

for (const engine of ENGINES) {
  describe(`home-realm discovery and the domain flow with oidc-provider on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let other: ProjectFixture;
    let idp: TestIdp;
    let callbackUri: string;
    let superToken: string;

    function providerConfig(c: IdpClient, extra: Partial<IdentityProvider> = {}): IdentityProvider {
      return { issuer: idp.issuer, clientId: c.clientId, clientSecret: c.clientSecret, ...extra };
    }

    async function createDomain(body: Record<string, unknown>) {
      const created = await call(server, 'POST', '/fhir/R4/DomainConfiguration', {
        token: superToken,
        body: { resourceType: 'DomainConfiguration', ...body },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body;
    }

    before(async () => {
      server = await startServer(engine, FEDERATION_ENV);
      fx = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      other = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      callbackUri = `${server.baseUrl}auth/external`;
      idp = await startIdp({ redirectUris: [callbackUri] });
      superToken = await tokenForMembership(server.services, server.adminMembership);
      // Issuer only: /auth/method finds the authorization endpoint by discovery.
      await createDomain({
        domain: DOMAIN,
        project: { reference: `Project/${fx.project.id}` },
        identityProvider: providerConfig(idp.basicClient),
      });
    });
    after(async () => {
      await idp?.close();
      await server?.close();
    });

    const method = (body: unknown, contentType = 'application/json') =>
      call(server, 'POST', '/auth/method', { body, headers: { 'content-type': contentType } });

    /**
     * The browser round trip of the domain flow as Medplum's sign-in form makes it: /auth/method,
     * the IdP URL with the JSON state added, sign-in at the provider, fedhir's callback (its cookies
     * land in `jar`).
     */
    async function domainSignIn(
      email: string,
      accountId: string,
      jar: CookieJar,
      state: Record<string, unknown> = {},
    ): Promise<PageAnswer> {
      const discovered = await method({ email });
      assert.equal(discovered.status, 200, JSON.stringify(discovered.body));
      assert.ok(discovered.body.authorizeUrl, `no provider for ${email}`);
      const url = new URL(discovered.body.authorizeUrl);
      url.searchParams.set('state', JSON.stringify({ domain: discovered.body.domain, ...state }));
      const back = await signInAtIdp(url.href, accountId, new CookieJar());
      assert.equal(`${back.origin}${back.pathname}`, callbackUri);
      return externalCallback(server, back, jar);
    }

    /** Asserts the 302 to the hosted page and answers the login id. */
    function assertToSignin(answer: PageAnswer): string {
      assert.equal(answer.status, 302, alertOf(answer));
      const location = answer.location as URL;
      assert.equal(`${location.origin}${location.pathname}`, `${server.baseUrl}signin`);
      assert.deepEqual([...location.searchParams.keys()], ['login']);
      const id = location.searchParams.get('login') ?? '';
      assert.match(id, /^[0-9a-f-]{36}$/);
      return id;
    }

    const page = async (jar: CookieJar, path: string, init: RequestInit = {}) => {
      const response = await jar.fetch(new URL(path, server.baseUrl), init);
      const location = response.headers.get('location');
      return {
        status: response.status,
        headers: response.headers,
        text: await response.text(),
        location: location ? new URL(location, server.baseUrl) : undefined,
      };
    };

    const postChoice = (jar: CookieJar, fields: Record<string, string>) =>
      page(jar, 'signin', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      });

    const loginJson = async (jar: CookieJar, id: string) => {
      const response = await jar.fetch(new URL(`auth/login/${id}`, server.baseUrl));
      const text = await response.text();
      return { status: response.status, text, body: text ? JSON.parse(text) : undefined };
    };

    test('POST /auth/method: exact, case-insensitive domain match only (RP-44), URL built as Medplum builds it', async () => {
      for (const email of [`someone@${DOMAIN}`, 'Someone@EXAMPLE.COM', '  a@Example.Com ']) {
        const answer = await method({ email });
        assert.equal(answer.status, 200, email);
        assert.equal(answer.body.domain, DOMAIN, email);
        const url = new URL(answer.body.authorizeUrl);
        assert.equal(`${url.origin}${url.pathname}`, idp.authorizeUrl, 'discovered endpoint');
        assert.equal(url.searchParams.get('client_id'), idp.basicClient.clientId);
        assert.equal(url.searchParams.get('redirect_uri'), callbackUri);
        assert.equal(url.searchParams.get('response_type'), 'code');
        assert.equal(url.searchParams.get('scope'), 'openid profile email');
        assert.ok(!answer.body.authorizeUrl.includes(encodeURIComponent(idp.basicClient.clientSecret)));
      }
      // The Medplum SDK sends application/fhir+json.
      const fhirJson = await method({ email: `b@${DOMAIN}` }, 'application/fhir+json');
      assert.equal(fhirJson.body.domain, DOMAIN);
      for (const email of [
        'a@evilexample.com',
        'a@example.com.evil.com',
        'a@sub.example.com',
        'a@example.co',
        'example.com@evil.com',
      ]) {
        const answer = await method({ email });
        assert.equal(answer.status, 200, email);
        assert.deepEqual(answer.body, {}, email);
      }
      for (const body of [
        { email: '"a@example.com"@evil.com' },
        { email: 'not-an-email' },
        {},
        { email: 7 },
      ]) {
        const answer = await method(body);
        assert.equal(answer.status, 400, JSON.stringify(body));
        assert.equal(answer.body.resourceType, 'OperationOutcome');
        assert.equal(answer.body.issue[0].details.text, 'Valid email address is required');
      }
    });

    test('POST /auth/method: an explicit authorizeUrl is used as is; a configuration without project is not offered', async () => {
      await createDomain({
        domain: 'explicit.example.org',
        project: { reference: `Project/${other.project.id}` },
        identityProvider: {
          authorizeUrl: `${idp.authorizeUrl}?prompt=login`,
          tokenUrl: idp.tokenUrl,
          userInfoUrl: idp.userInfoUrl,
          clientId: idp.postClient.clientId,
          clientSecret: idp.postClient.clientSecret,
          tokenAuthMethod: 'client_secret_post',
        },
      });
      const answer = await method({ email: 'x@explicit.example.org', projectId: other.project.id });
      assert.equal(answer.status, 200);
      const url = new URL(answer.body.authorizeUrl);
      assert.equal(url.searchParams.get('prompt'), 'login', 'the configured query is kept');
      assert.equal(url.searchParams.get('client_id'), idp.postClient.clientId);
      assert.equal(url.searchParams.get('redirect_uri'), callbackUri);

      await createDomain({ domain: 'orphan.example.org', identityProvider: providerConfig(idp.basicClient) });
      assert.deepEqual((await method({ email: 'x@orphan.example.org' })).body, {});
    });

    test('one membership: 302 to /signin with a binding cookie; the page says signed in; the code stays server-side', async () => {
      const user = await domainUser(server, fx);
      const accountId = idp.account(user.email);
      const jar = new CookieJar();
      const answer = await domainSignIn(user.email, accountId, jar);
      const id = assertToSignin(answer);

      const cookies = answer.headers.getSetCookie().filter((c) => c.startsWith('fedhir_signin='));
      assert.deepEqual(cookies.map((c) => /Path=([^;]*)/.exec(c)?.[1]).sort(), ['/auth/login', '/signin']);
      for (const cookie of cookies) {
        assert.match(cookie, /; HttpOnly/);
        assert.match(cookie, /; SameSite=Lax/);
      }
      const cookieValue = /^fedhir_signin=([^;]*)/.exec(cookies[0] ?? '')?.[1] ?? '';
      assert.ok(cookieValue.length >= 43);

      const row = await loginRow(server, id);
      assert.ok(row);
      assert.equal(row.client_id, null);
      assert.equal(row.auth_method, 'external');
      assert.equal(row.membership_id, user.memberships[0]?.id);
      assert.equal(row.project_id, fx.project.id);
      assert.ok(row.code_digest, 'the login has its code');
      assert.ok(row.code_challenge, 'bound to a challenge nobody holds');
      assert.ok(!JSON.stringify(row).includes(cookieValue), 'only a digest of the cookie is stored');
      assert.deepEqual(
        (await linksOf(server, user.memberships[0]?.id ?? '')).map((l) => l.subject),
        [accountId],
      );

      const signedIn = await page(jar, `signin?login=${id}`);
      assert.equal(signedIn.status, 200, alertOf(signedIn));
      assert.match(signedIn.text, /<h1>Signed in<\/h1>/);
      assert.match(signedIn.text, /Profile1 User/);
      assert.match(signedIn.text, /no application to return to/);
      assert.match(signedIn.text, /href="\/"/);
      assert.equal(signedIn.headers.get('x-frame-options'), 'DENY');
      assert.equal(signedIn.headers.get('access-control-allow-origin'), null);

      // The JSON view never answers a code; a completed login has nothing left to choose.
      const json = await loginJson(jar, id);
      assert.equal(json.status, 400);
      assert.equal(json.body.resourceType, 'OperationOutcome');
      assert.equal(json.body.code, undefined);
    });

    test('several memberships: the hosted chooser decides; the choice completes the login server-side', async () => {
      const user = await domainUser(server, fx, 2);
      const accountId = idp.account(user.email);
      const jar = new CookieJar();
      const id = assertToSignin(await domainSignIn(user.email, accountId, jar));
      const pending = await loginRow(server, id);
      assert.equal(pending?.membership_id, null);
      assert.equal(pending?.code_digest, null, 'no code before the choice');

      // Medplum's hosted app: the memberships, never a code.
      const json = await loginJson(jar, id);
      assert.equal(json.status, 200, json.text);
      assert.equal(json.body.login, id);
      assert.deepEqual(
        json.body.memberships.map((m: { id: string }) => m.id).sort(),
        user.memberships.map((m) => m.id).sort(),
      );
      for (const m of json.body.memberships) {
        assert.equal(m.project.reference, `Project/${fx.project.id}`);
        assert.match(m.profile.reference, /^Patient\//);
      }
      assert.deepEqual(Object.keys(json.body).sort(), ['login', 'memberships'], 'never a code');

      const chooser = await page(jar, `signin?login=${id}`);
      assert.equal(chooser.status, 200, alertOf(chooser));
      assert.match(chooser.text, /Choose a profile/);
      assert.match(chooser.text, /Profile1 User/);
      assert.match(chooser.text, /Profile2 User/);
      const fields = hiddenFields(chooser.text);
      assert.equal(fields.login, id);
      assert.ok(fields.csrf);

      // A forged form (wrong CSRF token) changes nothing.
      const forged = await postChoice(jar, {
        login: id,
        csrf: 'x'.repeat(32),
        membership: user.memberships[1]?.id ?? '',
      });
      assert.equal(forged.status, 400);
      assert.match(alertOf(forged), /expired/);
      assert.equal((await loginRow(server, id))?.code_digest, null);

      const again = await page(jar, `signin?login=${id}`);
      const chosen = user.memberships[1] as ProjectMembership;
      const posted = await postChoice(jar, { ...hiddenFields(again.text), membership: chosen.id });
      assert.equal(posted.status, 303, alertOf(posted));
      assert.equal(posted.location?.href, `${server.baseUrl}signin?login=${id}`);
      const done = await loginRow(server, id);
      assert.equal(done?.membership_id, chosen.id);
      assert.ok(done?.code_digest, 'the code is issued server-side');
      assert.deepEqual(
        (await linksOf(server, chosen.id)).map((l) => l.subject),
        [accountId],
        'the chosen membership is linked',
      );

      const signedIn = await page(jar, posted.location?.href ?? '');
      assert.equal(signedIn.status, 200);
      assert.match(signedIn.text, /<h1>Signed in<\/h1>/);
      assert.match(signedIn.text, /Profile2 User/);
      assert.doesNotMatch(signedIn.text, /code=/);

      // Completed once.
      const twice = await postChoice(jar, {
        ...hiddenFields(again.text),
        membership: user.memberships[0]?.id ?? '',
      });
      assert.equal(twice.status, 400);
      assert.equal((await loginRow(server, id))?.membership_id, chosen.id);
    });

    test('the login is bound to the browser that completed the callback (another browser gets 403 / 404)', async () => {
      const user = await domainUser(server, fx, 2);
      const jar = new CookieJar();
      const id = assertToSignin(await domainSignIn(user.email, idp.account(user.email), jar));
      const chooser = await page(jar, `signin?login=${id}`);
      assert.equal(chooser.status, 200);

      const stranger = new CookieJar();
      const pageAnswer = await page(stranger, `signin?login=${id}`);
      assert.equal(pageAnswer.status, 403);
      assert.doesNotMatch(pageAnswer.text, /Profile1|Profile2/);
      const json = await loginJson(stranger, id);
      assert.equal(json.status, 403);
      assert.equal(json.body.resourceType, 'OperationOutcome');
      assert.doesNotMatch(json.text, /Patient\//);
      // A forged cookie is no better than none.
      const forgedJar = new CookieJar();
      const forgedHeaders = new Headers();
      forgedHeaders.append('set-cookie', `fedhir_signin=${'A'.repeat(43)}; Path=/signin`);
      forgedJar.store(server.baseUrl, forgedHeaders);
      assert.equal((await page(forgedJar, `signin?login=${id}`)).status, 403);
      // The stranger cannot choose either, even with a CSRF pair of its own.
      const stolen = await postChoice(stranger, {
        ...hiddenFields(chooser.text),
        membership: user.memberships[0]?.id ?? '',
      });
      assert.equal(stolen.status, 403);
      assert.equal((await loginRow(server, id))?.membership_id, null);

      // Unknown logins, and logins that are not domain logins, are not found.
      const unknown = '00000000-0000-4000-8000-000000000000';
      assert.equal((await page(jar, `signin?login=${unknown}`)).status, 404);
      assert.equal((await loginJson(jar, unknown)).status, 404);
      assert.equal((await page(jar, 'signin')).status, 404);
      const password = await call(server, 'POST', '/auth/login', {
        body: {
          email: fx.admin.email,
          password: fx.admin.password,
          codeChallenge: pkcePair().challenge,
          codeChallengeMethod: 'S256',
        },
      });
      assert.equal(password.status, 200, JSON.stringify(password.body));
      assert.equal((await loginJson(jar, password.body.login)).status, 404);
    });

    test('a pending domain login cannot be completed through /auth/profile (it is bound to the hosted page)', async () => {
      const user = await domainUser(server, fx, 2);
      const id = assertToSignin(await domainSignIn(user.email, idp.account(user.email), new CookieJar()));
      const profile = await call(server, 'POST', '/auth/profile', {
        body: { login: id, profile: user.memberships[0]?.id },
      });
      assert.equal(profile.status, 400, JSON.stringify(profile.body));
      assert.match(profile.body.issue[0].details.text, /hosted sign-in page/);
      assert.equal(profile.body.code, undefined);
      // GET /auth/login/:login reads the hosted pages' cookie: no CORS for other origins.
      const cross = await fetch(new URL(`auth/login/${id}`, server.baseUrl), {
        headers: { origin: 'https://evil.example' },
      });
      assert.equal(cross.headers.get('access-control-allow-origin'), null);
    });

    test('the e-mail must be verified and at the configured domain exactly (RP-44); only the domain project counts', async () => {
      for (const [email, claims, message] of [
        ['a@evilexample.com', {}, /does not match domain/],
        ['a@example.com.evil.com', {}, /does not match domain/],
        ['a@sub.example.com', {}, /does not match domain/],
        [
          `unverified.${randomState().slice(0, 8).toLowerCase()}@${DOMAIN}`,
          { email_verified: false },
          /not verified/,
        ],
        ['"a@example.com"@evil.com', {}, /no valid e-mail/],
      ] as const) {
        const before = await loginCount(server);
        const url = new URL((await method({ email: `start@${DOMAIN}` })).body.authorizeUrl);
        url.searchParams.set('state', JSON.stringify({ domain: DOMAIN }));
        const back = await signInAtIdp(url.href, idp.account(email, claims), new CookieJar());
        const answer = await externalCallback(server, back, new CookieJar());
        assert.equal(answer.status, 400, email);
        assert.equal(answer.location, undefined);
        assert.match(alertOf(answer), message, email);
        assert.equal(answer.headers.getSetCookie().filter((c) => c.startsWith('fedhir_signin=')).length, 0);
        assert.equal(await loginCount(server), before, 'no Login stored');
      }
      // A user of the domain who is a member of another project only is not found.
      const outsider = await domainUser(server, other);
      const before = await loginCount(server);
      const url = new URL((await method({ email: outsider.email })).body.authorizeUrl);
      url.searchParams.set('state', JSON.stringify({ domain: DOMAIN }));
      const back = await signInAtIdp(url.href, idp.account(outsider.email), new CookieJar());
      const refused = await externalCallback(server, back, new CookieJar());
      assert.equal(refused.status, 400);
      assert.match(alertOf(refused), /not found in this project/);
      assert.equal(await loginCount(server), before);
      // So is a state naming another project, or an unknown domain.
      const user = await domainUser(server, fx);
      const wrongProject = await domainSignIn(user.email, idp.account(user.email), new CookieJar(), {
        projectId: other.project.id,
      });
      assert.equal(wrongProject.status, 400);
      assert.match(alertOf(wrongProject), /projectId does not match the domain/);
      const unknown = await externalCallback(server, {
        code: 'whatever',
        state: JSON.stringify({ domain: 'unknown.example.net' }),
      });
      assert.equal(unknown.status, 400);
      assert.match(alertOf(unknown), /Identity provider not found/);
    });

    test('returnTo is ignored (RP-47): always the hosted page of this server', async () => {
      for (const returnTo of ['https://evil.com', '//evil.com', '/\\evil.com', 'javascript:alert(1)']) {
        const user = await domainUser(server, fx);
        const answer = await domainSignIn(user.email, idp.account(user.email), new CookieJar(), { returnTo });
        assertToSignin(answer);
        assert.equal(answer.location?.origin, new URL(server.baseUrl).origin, returnTo);
      }
    });

    test("§3.1 with a client without provider: the domain's provider of the client's project, back to the app", async () => {
      const user = await domainUser(server, fx);
      const pkce = pkcePair();
      const state = {
        clientId: fx.client.id,
        redirectUri: APP_REDIRECT,
        codeChallenge: pkce.challenge,
        codeChallengeMethod: 'S256',
      };
      const answer = await domainSignIn(user.email, idp.account(user.email), new CookieJar(), state);
      assert.equal(answer.status, 302, alertOf(answer));
      const location = answer.location as URL;
      assert.equal(`${location.origin}${location.pathname}`, APP_REDIRECT);
      const code = location.searchParams.get('code') ?? '';
      const tokens = await token(server, {
        grant_type: 'authorization_code',
        code,
        code_verifier: pkce.verifier,
        client_id: fx.client.id,
      });
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));

      // A client of another project never borrows this domain's provider.
      const foreign = await domainSignIn(user.email, idp.account(user.email), new CookieJar(), {
        ...state,
        clientId: other.client.id,
      });
      assert.equal(foreign.status, 400);
      assert.match(alertOf(foreign), /Identity provider not found/);
    });

    test('the authorize page offers "Continue with" the provider only for clients that have one, with the same parameters', async () => {
      const plain = await authorize(server, authorizeParams(fx).params);
      assert.equal(plain.status, 200);
      assert.doesNotMatch(plain.text, /Continue with/);
      assert.doesNotMatch(plain.text, /auth\/external\/start/);

      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const { params } = authorizeParams(fx, { client_id: app.id, redirect_uri: APP_REDIRECT });
      const form = await authorize(server, params);
      assert.equal(form.status, 200, form.text);
      assert.match(form.text, new RegExp(`Continue with ${new URL(idp.issuer).host.replace(/\./g, '\\.')}`));
      const href = /<a class="button" href="([^"]*)">Continue with/.exec(form.text)?.[1] ?? '';
      const link = new URL(href.replace(/&amp;/g, '&'));
      assert.equal(`${link.origin}${link.pathname}`, `${server.baseUrl}auth/external/start`);
      for (const name of [
        'client_id',
        'redirect_uri',
        'state',
        'nonce',
        'code_challenge',
        'code_challenge_method',
      ]) {
        assert.equal(link.searchParams.get(name), params[name], name);
      }
      // Following it runs §3.2: to the provider, with fedhir's own state and the binding cookie.
      const jar = new CookieJar();
      const started = await externalStart(server, Object.fromEntries(link.searchParams), jar);
      assert.equal(started.status, 302, started.text);
      assert.equal(`${started.location?.origin}${started.location?.pathname}`, idp.authorizeUrl);
      assert.ok(jar.header(callbackUri), 'binding cookie set');
    });

    test('external sign-in writes an AuditEvent for a success and for a failure', async () => {
      const user = await domainUser(server, fx);
      const id = assertToSignin(await domainSignIn(user.email, idp.account(user.email), new CookieJar()));
      const failed = await externalCallback(server, {
        code: 'x',
        state: JSON.stringify({ domain: 'unknown.example.net' }),
      });
      assert.equal(failed.status, 400);
      const stranger = await domainSignIn(user.email, idp.account('nobody@evilexample.com'), new CookieJar());
      assert.equal(stranger.status, 400);
      await server.services.audit.flush();

      const rows = await server.database.db.query<{ content: AuditRow }>(
        `SELECT content FROM audit_event_resource
         WHERE content->'subtype' @> '[{"code":"external-login"}]'::jsonb`,
      );
      const events = rows.map((r) => r.content);
      const success = events.find((e) => e.entity?.[0]?.what?.reference === `Login/${id}`);
      assert.ok(success, 'the success is audited');
      assert.equal(success.outcome, '0');
      assert.equal(success.meta.project, fx.project.id);
      const userId = user.memberships[0]?.user.reference;
      assert.equal(success.agent[0]?.who?.reference, userId);
      assert.equal(success.agent[0]?.network?.address, '127.0.0.1');

      const failures = events.filter((e) => e.outcome === '4');
      assert.ok(failures.some((e) => e.outcomeDesc === 'Identity provider not found'));
      const mismatch = failures.find((e) => e.outcomeDesc === 'Email address does not match domain');
      assert.ok(mismatch, JSON.stringify(failures.map((e) => e.outcomeDesc)));
      assert.equal(mismatch.meta.project, fx.project.id);
      assert.equal(mismatch.entity, undefined, 'no login was made');
    });
  });

  describe(`/auth/external/start is throttled per IP (RB-15) on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let idp: TestIdp;

    before(async () => {
      server = await startServer(engine, {
        ...FEDERATION_ENV,
        RATE_LIMIT_FAILURES_PER_IP: '3',
        RATE_LIMIT_FAILURES_PER_SUBJECT: '1000',
      });
      fx = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      idp = await startIdp({ redirectUris: [`${server.baseUrl}auth/external`] });
    });
    after(async () => {
      await idp?.close();
      await server?.close();
    });

    test('starts beyond the per-IP budget answer 429 with Retry-After; other budgets are untouched', async () => {
      const app = await idpClientApp(server, fx, {
        issuer: idp.issuer,
        clientId: idp.basicClient.clientId,
        clientSecret: idp.basicClient.clientSecret,
      });
      const start = () =>
        externalStart(
          server,
          {
            client_id: app.id,
            redirect_uri: APP_REDIRECT,
            code_challenge: pkcePair().challenge,
            code_challenge_method: 'S256',
            state: randomState(),
          },
          new CookieJar(),
        );
      for (let i = 0; i < 3; i++) assert.equal((await start()).status, 302, `start ${i + 1}`);
      const flows = await server.database.db.query<{ n: string }>('SELECT count(*) AS n FROM external_flow');
      const refused = await start();
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.match(refused.headers.get('content-type') ?? '', /text\/html/);
      assert.equal(refused.location, undefined);
      const after = await server.database.db.query<{ n: string }>('SELECT count(*) AS n FROM external_flow');
      assert.equal(after[0]?.n, flows[0]?.n, 'a refused start stores nothing');

      // The start budget is its own: password sign-in from the same address still works.
      const password = await call(server, 'POST', '/auth/login', {
        body: {
          email: fx.admin.email,
          password: fx.admin.password,
          clientId: fx.client.id,
          codeChallenge: pkcePair().challenge,
          codeChallengeMethod: 'S256',
        },
      });
      assert.equal(password.status, 200, JSON.stringify(password.body));

      await server.services.audit.flush();
      const limited = await server.database.db.query<{ n: string }>(
        `SELECT count(*) AS n FROM audit_event_resource
         WHERE content->'subtype' @> '[{"code":"external-login"}]'::jsonb AND content->>'outcomeDesc' = 'rate limited'`,
      );
      assert.equal(Number(limited[0]?.n), 1);
    });
  });
}
