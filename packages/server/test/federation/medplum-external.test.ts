/**
 * Issue 4, protocol.md §3.1: the Medplum-compatible external sign-in, end to end with the unchanged
 * `@medplum/core` 4 SDK and a real OpenID provider (oidc-provider 9 on 127.0.0.1):
 * `getExternalAuthRedirectUri(…, pkceEnabled=false)` with the app's S256 challenge in `state` (PKCE
 * with fedhir, none toward the provider, as §3.1 documents) → sign-in at the provider → fedhir's
 * `/auth/external` redeems the provider's code, validates the ID token, reads userinfo, maps the user
 * → 302 to the app with `login`, `code`, `iss` → `medplum.processCode(code)` with the verifier the
 * SDK kept in sessionStorage → the profile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MedplumClient } from '@medplum/core';
import type { IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import { ENGINES } from '../support/db.ts';
import {
  APP_REDIRECT,
  accessPolicy,
  CookieJar,
  externalCallback,
  FEDERATION_ENV,
  type IdpClientApp,
  idpClientApp,
  invite,
  linksOf,
  loginCount,
  newEmail,
} from '../support/federation.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { type IdpClient, signInAtIdp, startIdp, type TestIdp } from '../support/idp.ts';
import { installBrowserShims, medplumClient } from '../support/medplum.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`§3.1 external sign-in with @medplum/core 4 and oidc-provider on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let idp: TestIdp;
    let callbackUri: string;

    before(async () => {
      server = await startServer(engine, FEDERATION_ENV);
      installBrowserShims();
      fx = await createProjectFixture(server, { redirectUris: [APP_REDIRECT] });
      callbackUri = `${server.baseUrl}auth/external`;
      idp = await startIdp({ redirectUris: [callbackUri] });
    });
    after(async () => {
      await idp?.close();
      await server?.close();
    });

    /** The identity provider as the admin app saves it for one of the provider's clients. */
    function providerConfig(c: IdpClient, extra: Partial<IdentityProvider> = {}): IdentityProvider {
      return {
        issuer: idp.issuer,
        authorizeUrl: idp.authorizeUrl,
        tokenUrl: idp.tokenUrl,
        userInfoUrl: idp.userInfoUrl,
        clientId: c.clientId,
        clientSecret: c.clientSecret,
        tokenAuthMethod: c.tokenAuthMethod,
        ...extra,
      };
    }

    /** The page's fedhir error message. */
    const alertOf = (text: string) => /role="alert">([^<]*)</.exec(text)?.[1] ?? text.slice(0, 300);

    /**
     * The browser round trip as an app written against the Medplum SDK makes it, up to fedhir's
     * answer to the provider's redirect: `startPkce()` (verifier kept in sessionStorage),
     * `getExternalAuthRedirectUri(…, pkceEnabled=false)`, sign-in at the provider, `/auth/external`.
     */
    async function throughProvider(app: IdpClientApp, idpClient: IdpClient, accountId: string) {
      const medplum: MedplumClient = medplumClient(server.baseUrl, app.id);
      const pkce = await medplum.startPkce();
      assert.equal(pkce.codeChallengeMethod, 'S256');
      assert.ok(sessionStorage.getItem('codeVerifier'), 'the SDK keeps its verifier in sessionStorage');
      const url = medplum.getExternalAuthRedirectUri(
        idp.authorizeUrl,
        idpClient.clientId,
        callbackUri,
        {
          projectId: fx.project.id,
          clientId: app.id,
          redirectUri: app.redirectUri,
          codeChallenge: pkce.codeChallenge,
          codeChallengeMethod: 'S256',
        },
        false,
      );
      // §3.1: the challenge travels to fedhir inside `state`; the provider sees no PKCE.
      const idpUrl = new URL(url);
      assert.equal(idpUrl.searchParams.get('code_challenge'), null);
      assert.equal(JSON.parse(idpUrl.searchParams.get('state') ?? '{}').codeChallenge, pkce.codeChallenge);
      const back = await signInAtIdp(url, accountId, new CookieJar());
      assert.equal(`${back.origin}${back.pathname}`, callbackUri);
      return { medplum, answer: await externalCallback(server, back) };
    }

    /**
     * The whole round trip, then `processCode`. Answers the SDK client (signed in), the profile it
     * resolved and fedhir's redirect to the app.
     */
    async function signInWithMedplum(app: IdpClientApp, idpClient: IdpClient, accountId: string) {
      const { medplum, answer } = await throughProvider(app, idpClient, accountId);
      assert.equal(answer.status, 302, alertOf(answer.text));
      const location = answer.location as URL;
      assert.equal(`${location.origin}${location.pathname}`, app.redirectUri);
      const code = location.searchParams.get('code');
      assert.ok(code);
      assert.ok(location.searchParams.get('login'));
      // RFC 9207 on the redirect back to the app (protocol.md §3.1 step 4).
      assert.equal(location.searchParams.get('iss'), server.baseUrl);
      const profile = await medplum.processCode(code);
      return { medplum, profile, location };
    }

    async function assertSignedInAs(medplum: MedplumClient, membership: ProjectMembership) {
      const me = await medplum.get('auth/me', { cache: 'no-cache' });
      assert.equal(me.membership.id, membership.id);
      assert.equal(`${me.profile.resourceType}/${me.profile.id}`, membership.profile.reference);
      const [type, id] = membership.profile.reference.split('/');
      const read = await medplum.readResource(type as 'Patient', id as string, { cache: 'no-cache' });
      assert.equal(read.id, id);
    }

    for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
      test(`e-mail mode with ${method}: the verified e-mail finds the invited user, linked to (issuer, sub)`, async () => {
        const idpClient = method === 'client_secret_basic' ? idp.basicClient : idp.postClient;
        const app = await idpClientApp(server, fx, providerConfig(idpClient));
        const email = newEmail('alice');
        const membership = await invite(server, fx, { email });
        const sub = idp.account(email.toUpperCase());
        const tokenCalls = idp.counts.token;

        const { medplum, profile } = await signInWithMedplum(app, idpClient, sub);
        assert.equal(`${profile.resourceType}/${profile.id}`, membership.profile.reference);
        await assertSignedInAs(medplum, membership);
        assert.equal(idp.counts.token, tokenCalls + 1, 'one code redemption at the provider');
        assert.deepEqual(
          (await linksOf(server, membership.id)).map((l) => [l.provider, l.subject]),
          [[idp.issuer, sub]],
        );

        // The second sign-in resolves through the link, and the code is single use.
        const again = await signInWithMedplum(app, idpClient, sub);
        assert.equal(again.profile.id, profile.id);
      });
    }

    test('the code fedhir issued is bound to the PKCE verifier in state (a wrong verifier fails)', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const email = newEmail('pkce');
      await invite(server, fx, { email });
      const { medplum, answer } = await throughProvider(app, idp.basicClient, idp.account(email));
      assert.equal(answer.status, 302, alertOf(answer.text));
      sessionStorage.setItem('codeVerifier', 'x'.repeat(64));
      await assert.rejects(medplum.processCode(answer.location?.searchParams.get('code') ?? ''));
    });

    test('useSubject: the provider `sub` is the membership externalId; no e-mail needed', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.postClient, { useSubject: true }));
      const sub = idp.account(undefined);
      const membership = await invite(server, fx, { externalId: sub, resourceType: 'Practitioner' });
      const { medplum, profile } = await signInWithMedplum(app, idp.postClient, sub);
      assert.equal(`${profile.resourceType}/${profile.id}`, membership.profile.reference);
      await assertSignedInAs(medplum, membership);
      assert.deepEqual(
        (await linksOf(server, membership.id)).map((l) => l.subject),
        [sub],
      );
    });

    test('email_verified as the string "true" (Cognito) is accepted', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const email = newEmail('cognito');
      const membership = await invite(server, fx, { email });
      const sub = idp.account(email, { email_verified: 'true' });
      const { profile } = await signInWithMedplum(app, idp.basicClient, sub);
      assert.equal(`${profile.resourceType}/${profile.id}`, membership.profile.reference);
    });

    test('email_verified false is refused: a 400 page, no code, no Login, no link', async () => {
      const app = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const email = newEmail('unverified');
      const membership = await invite(server, fx, { email });
      const logins = await loginCount(server);
      const { answer } = await throughProvider(
        app,
        idp.basicClient,
        idp.account(email, { email_verified: false }),
      );
      assert.equal(answer.status, 400);
      assert.equal(answer.location, undefined);
      assert.match(alertOf(answer.text), /not verified/);
      assert.equal(await loginCount(server), logins);
      assert.deepEqual(await linksOf(server, membership.id), []);
    });

    test('issuer only: endpoints come from discovery', async () => {
      const app = await idpClientApp(server, fx, {
        issuer: idp.issuer,
        clientId: idp.basicClient.clientId,
        clientSecret: idp.basicClient.clientSecret,
      });
      const email = newEmail('discovered');
      const membership = await invite(server, fx, { email });
      const { profile } = await signInWithMedplum(app, idp.basicClient, idp.account(email));
      assert.equal(`${profile.resourceType}/${profile.id}`, membership.profile.reference);
    });

    test('just-in-time provisioning: an unknown user gets a project-scoped User, Patient and linked membership', async () => {
      const policy = await accessPolicy(server, fx);
      const refused = await call(server, 'PUT', `/fhir/R4/ClientApplication/${fx.client.id}`, {
        token: fx.admin.token,
        body: {
          ...(
            await call(server, 'GET', `/fhir/R4/ClientApplication/${fx.client.id}`, { token: fx.admin.token })
          ).body,
          identityProvider: providerConfig(idp.basicClient, { justInTimeProvisioning: true }),
        },
      });
      assert.equal(refused.status, 400, 'provisioning without an access policy is refused at save');
      assert.match(refused.body.issue[0].details.text, /justInTimeAccessPolicy/);
      const app = await idpClientApp(
        server,
        fx,
        providerConfig(idp.basicClient, { justInTimeProvisioning: true, justInTimeAccessPolicy: policy }),
      );
      const email = newEmail('newcomer');
      const sub = idp.account(email, { given_name: 'Nova', family_name: 'Newcomer' });
      const { medplum, profile } = await signInWithMedplum(app, idp.basicClient, sub);
      assert.equal(profile.resourceType, 'Patient');
      assert.deepEqual((profile as { name?: unknown }).name, [{ given: ['Nova'], family: 'Newcomer' }]);
      const me = await medplum.get('auth/me', { cache: 'no-cache' });
      assert.equal(me.project.id, fx.project.id);
      const membership = await call(server, 'GET', `/fhir/R4/ProjectMembership/${me.membership.id}`, {
        token: fx.admin.token,
      });
      assert.equal(membership.body.externalId, sub);
      assert.equal(
        membership.body.accessPolicy?.reference,
        policy,
        'self-registered users get the named policy',
      );
      assert.equal(membership.body.profile.reference, `Patient/${profile.id}`);
      const user = await call(server, 'GET', `/fhir/R4/${me.membership.user.reference}`, {
        token: fx.admin.token,
      });
      assert.equal(user.status, 200, JSON.stringify(user.body));
      assert.equal(user.body.email, email);
      assert.equal(user.body.project?.reference, `Project/${fx.project.id}`);
      assert.deepEqual(
        (await linksOf(server, me.membership.id)).map((l) => [l.provider, l.subject]),
        [[idp.issuer, sub]],
      );
      // The next sign-in finds the same membership (through the link), creating nothing new.
      const again = await signInWithMedplum(app, idp.basicClient, sub);
      assert.equal(again.profile.id, profile.id);

      // Without JIT the same kind of unknown user is refused.
      const plain = await idpClientApp(server, fx, providerConfig(idp.basicClient));
      const { answer } = await throughProvider(plain, idp.basicClient, idp.account(newEmail('stranger')));
      assert.equal(answer.status, 400);
      assert.match(alertOf(answer.text), /not found/);
    });
  });
}
