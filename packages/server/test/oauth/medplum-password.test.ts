import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ClientStorage, MedplumClient, MemoryStorage } from '@medplum/core';
import { decodeJwt } from 'jose';
import { ENGINES } from '../support/db.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { startServer, type TestServer } from '../support/server.ts';

// @medplum/core 4.x keeps its PKCE verifier in window.sessionStorage, as a browser has
// (medplum-client-behaviour §7); Node lacks one.
(globalThis as { sessionStorage?: unknown }).sessionStorage = new MemoryStorage();

/**
 * ...and hashes it with window.btoa; without it the SDK falls back to `plain`, which we refuse.
 * The embedded database runs on its own thread, so this global never reaches PGlite (Emscripten
 * would take a global `window` for a browser).
 */
function shimBrowserWindow(): void {
  // A page at http://localhost:8000/ (processCode sends its origin as redirect_uri).
  const location = { protocol: 'http:', host: 'localhost:8000' };
  (globalThis as { location?: unknown }).location ??= location;
  // A window whose other members (btoa, atob, TextDecoder, crypto…) are Node's own globals.
  (globalThis as { window?: unknown }).window ??= Object.assign(Object.create(globalThis), { location });
}

function medplumFor(server: TestServer, clientId?: string): MedplumClient {
  return new MedplumClient({
    baseUrl: server.baseUrl,
    ...(clientId ? { clientId } : {}),
    storage: new ClientStorage(new MemoryStorage()),
  });
}

for (const engine of ENGINES) {
  describe(`@medplum/core 4 password sign-in on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;

    before(async () => {
      server = await startServer(engine);
      fx = await createProjectFixture(server);
      shimBrowserWindow();
    });
    after(() => server.close());

    test('startLogin + processCode, then /auth/me, refresh and signOut — unchanged SDK', async () => {
      const medplum = medplumFor(server);
      const login = await medplum.startLogin({
        email: fx.admin.email,
        password: fx.admin.password,
        projectId: fx.project.id,
      });
      assert.equal(typeof login.code, 'string', JSON.stringify(login));
      const profile = await medplum.processCode(login.code as string);
      assert.equal(profile?.resourceType, 'Practitioner');
      assert.equal(`Practitioner/${profile?.id}`, fx.admin.membership.profile.reference);
      assert.equal(medplum.getProject()?.id, fx.project.id);
      assert.equal(medplum.isProjectAdmin(), true);
      assert.equal(medplum.isSuperAdmin(), false);

      const accessToken = medplum.getAccessToken() as string;
      const claims = decodeJwt(accessToken);
      assert.equal(claims.iss, server.baseUrl);
      assert.equal(claims.aud, server.baseUrl);
      assert.equal(typeof claims.login_id, 'string');
      const stored = medplum.getActiveLogin();
      assert.ok(stored?.refreshToken, 'default scope openid offline_access gives a refresh token');

      // Refresh rotates: the new pair works, /auth/me still answers.
      // The SDK refreshes when the token expires within the grace: 2 h covers a 1 h token.
      await medplum.refreshIfExpired(2 * 3600 * 1000);
      const refreshed = medplum.getActiveLogin();
      assert.notEqual(refreshed?.refreshToken, stored?.refreshToken);
      assert.notEqual(refreshed?.accessToken, accessToken);
      const me = await medplum.get('auth/me', { cache: 'no-cache' });
      assert.equal(me.membership.id, fx.admin.membership.id);

      // signOut revokes the Login: the access token stops working at once.
      const token = medplum.getAccessToken() as string;
      await medplum.signOut();
      const after = await fetch(new URL('auth/me', server.baseUrl), {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(after.status, 401);
    });

    test('a wrong password and an unknown e-mail get the same answer', async () => {
      const medplum = medplumFor(server);
      const wrong = await medplum
        .startLogin({ email: fx.admin.email, password: 'not the password' })
        .catch((e) => e);
      const unknown = await medplum
        .startLogin({ email: 'nobody@example.com', password: 'not the password' })
        .catch((e) => e);
      assert.ok(wrong instanceof Error);
      assert.equal(wrong.message, 'Email or password is invalid');
      assert.equal(unknown.message, wrong.message);
    });

    test('a client with its own clientId: token client_id matches, so the SDK accepts it', async () => {
      const medplum = medplumFor(server, fx.client.id);
      const login = await medplum.startLogin({ email: fx.admin.email, password: fx.admin.password });
      const profile = await medplum.processCode(login.code as string);
      assert.equal(profile?.resourceType, 'Practitioner');
      assert.equal(decodeJwt(medplum.getAccessToken() as string).client_id, fx.client.id);
    });
  });
}
