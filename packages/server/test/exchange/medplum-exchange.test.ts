/**
 * Issue 5 end to end with the unchanged Medplum SDK (protocol.md §4; medplum-client-behaviour §2.5):
 * a real provider (oidc-provider 9) issues the subject token, `@medplum/core` 4 exchanges it, and the
 * issued token reads FHIR. Then the raw grant's response shape and the legacy POST /auth/exchange.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { ENGINES } from '../support/db.ts';
import {
  ACCESS_TOKEN_TYPE,
  EXCHANGE_ENV,
  type ExchangeClient,
  exchange,
  exchangeClient,
  invite,
  newEmail,
} from '../support/exchange-fedhir.ts';
import { EXT_CLIENT_ID, type ExchangeIdp, startExchangeIdp } from '../support/exchange-idp.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { installBrowserShims, medplumClient } from '../support/medplum.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`token exchange through @medplum/core 4 on ${engine}`, () => {
    let server: TestServer;
    let idp: ExchangeIdp;
    let fx: ProjectFixture;
    let client: ExchangeClient;
    let email: string;
    let sub: string;

    before(async () => {
      idp = await startExchangeIdp();
      server = await startServer(engine, EXCHANGE_ENV);
      installBrowserShims();
      fx = await createProjectFixture(server);
      // The seeds' configuration: userinfo only (Medplum-compatible default method).
      client = await exchangeClient(server, fx, { userInfoUrl: idp.userinfoUrl, clientId: EXT_CLIENT_ID });
      email = newEmail('medplum');
      await invite(server, fx, { email });
      sub = idp.account(email);
    });
    after(async () => {
      await server?.close();
      await idp?.close();
    });

    test('exchangeExternalAccessToken → profile, then a FHIR read with the issued token', async () => {
      const medplum = medplumClient(server.baseUrl, client.id);
      const providerToken = await idp.accessToken(sub);
      const before = idp.counts.userinfo;
      const profile = await medplum.exchangeExternalAccessToken(providerToken);
      assert.equal(idp.counts.userinfo, before + 1, 'one userinfo call at the provider');
      assert.equal(profile?.resourceType, 'Practitioner');
      const login = medplum.getActiveLogin();
      assert.equal(login?.project?.reference, `Project/${fx.project.id}`);
      assert.equal(login?.profile?.reference, `Practitioner/${profile?.id}`);
      assert.ok(login?.refreshToken, 'a refresh token (default scope openid offline_access)');

      const read = await medplum.readResource('Practitioner', profile?.id as string);
      assert.equal(read.id, profile?.id);
      const created = await medplum.createResource({
        resourceType: 'Patient',
        name: [{ family: 'Exchanged' }],
      });
      assert.equal((created as { meta?: { project?: string } }).meta?.project, fx.project.id);

      const claims = decodeJwt(medplum.getAccessToken() as string);
      assert.equal(claims.client_id, client.id);
      assert.equal(claims.profile, `Practitioner/${profile?.id}`);
      assert.equal(typeof claims.login_id, 'string');
    });

    test('the raw grant answers the full RFC 8693 §2.2.1 response', async () => {
      const response = await exchange(server, client.id, await idp.accessToken(sub));
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.headers.get('cache-control'), 'no-store');
      const body = response.body;
      assert.equal(body.issued_token_type, ACCESS_TOKEN_TYPE);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(typeof body.expires_in, 'number');
      assert.ok((body.expires_in as number) > 300);
      assert.equal(body.scope, 'openid offline_access');
      assert.equal(typeof body.refresh_token, 'string');
      assert.equal(typeof body.id_token, 'string');
      assert.deepEqual(body.project, { reference: `Project/${fx.project.id}` });
      assert.match((body.profile as { reference: string }).reference, /^Practitioner\//);
      const idToken = decodeJwt(body.id_token as string);
      assert.equal(idToken.aud, client.id);

      const me = await call(server, 'GET', '/auth/me', { token: body.access_token as string });
      assert.equal(me.status, 200);
      assert.equal(`Practitioner/${me.body.profile.id}`, (body.profile as { reference: string }).reference);

      // `openid` not asked: no ID token; `offline_access` not asked: no refresh token.
      const narrow = await exchange(server, client.id, await idp.accessToken(sub), { scope: 'profile' });
      assert.equal(narrow.status, 200, JSON.stringify(narrow.body));
      assert.equal(narrow.body.scope, 'profile');
      assert.equal(narrow.body.id_token, undefined);
      assert.equal(narrow.body.refresh_token, undefined);
    });

    test('legacy POST /auth/exchange gives the same result and carries Deprecation', async () => {
      const response = await call(server, 'POST', '/auth/exchange', {
        body: {
          externalAccessToken: await idp.accessToken(sub),
          clientId: client.id,
          nonce: 'legacy-nonce-1',
        },
        headers: { 'content-type': 'application/fhir+json' },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.ok(response.headers.get('deprecation'), 'Deprecation header');
      assert.equal(response.body.issued_token_type, ACCESS_TOKEN_TYPE);
      assert.equal(response.body.token_type, 'Bearer');
      assert.equal(typeof response.body.refresh_token, 'string');
      // Medplum copies the request's nonce into the ID token (protocol.md §2 lists it).
      assert.equal(decodeJwt(response.body.id_token).nonce, 'legacy-nonce-1');
      const read = await call(server, 'GET', '/auth/me', { token: response.body.access_token });
      assert.equal(read.status, 200);

      const rejected = await call(server, 'POST', '/auth/exchange', {
        body: { externalAccessToken: 'not-a-live-token', clientId: client.id },
      });
      assert.equal(rejected.status, 400);
      assert.equal(rejected.body.resourceType, 'OperationOutcome');
    });
  });
}
