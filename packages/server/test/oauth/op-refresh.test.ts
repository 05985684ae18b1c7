/**
 * security-cases.md §3d (OP-34 … OP-39): lifetimes, refresh rotation, reuse detection, binding and
 * revocation, on PGlite and (with TEST_DATABASE_URL) PostgreSQL. Time passing is simulated by moving
 * expiry / rotation columns in the database (no fake clock reaches a real server's database).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { digest } from '../../src/crypto/digest.ts';
import { ENGINES } from '../support/db.ts';
import { basic, createProjectFixture, type ProjectFixture, postForm } from '../support/fixtures.ts';
import {
  ageRotation,
  assertT,
  assertT401,
  createClient,
  deactivateMembership,
  expireRefreshToken,
  introspect,
  inviteUser,
  jwtParts,
  NO_FAILURE_LIMITS,
  passwordTokens,
  refresh,
  setClient,
  type Tokens,
  userinfo,
  withLastCharacterChanged,
} from '../support/oauth-flows.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, call, startServer, type TestServer } from '../support/server.ts';

const ACCESS_LIFETIME = 900;
const REFRESH_LIFETIME = 86_400;

for (const engine of ENGINES) {
  describe(`OP-34 … OP-39: tokens and refresh on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;

    before(async () => {
      server = await startServer(engine, {
        ...NO_FAILURE_LIMITS,
        ACCESS_TOKEN_LIFETIME: String(ACCESS_LIFETIME),
        REFRESH_TOKEN_LIFETIME: String(REFRESH_LIFETIME),
      });
      fx = await createProjectFixture(server);
    });
    after(() => server.close());

    const signIn = (options: Parameters<typeof passwordTokens>[2] = {}) =>
      passwordTokens(server, fx, { scope: 'openid profile offline_access', ...options });
    const refreshed = async (rt: string, extra: Record<string, string> = {}) => {
      const response = await refresh(server, rt, { client_id: fx.client.id, ...extra });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      return response.body as unknown as Tokens;
    };

    test('OP-34 lifetimes: AT exp−iat = configured = expires_in; AT refused 1 s after exp; ID token claims; RT absolute expiry', async () => {
      const nonce = 'n-0S6_WzA2Mj';
      const tokens = await signIn({ nonce });
      const at = jwtParts(tokens.access_token).payload as Record<string, number | string>;
      assert.equal(tokens.expires_in, ACCESS_LIFETIME);
      assert.equal(Number(at.exp) - Number(at.iat), ACCESS_LIFETIME);

      // 1 s after exp. The access token is a JWT, so the database cannot age it: the server's own
      // signer mints the same claims with an `exp` 1 s in the past (and, as control, 60 s ahead).
      const claims = {
        sub: String(at.sub),
        login_id: String(at.login_id),
        client_id: String(at.client_id),
        profile: String(at.profile),
        scope: String(at.scope),
      };
      const expired = await server.services.tokens.signAccessToken(claims, -1);
      const live = await server.services.tokens.signAccessToken(claims, 60);
      assert.equal((await userinfo(server, live.token)).status, 200);
      const refused = await userinfo(server, expired.token);
      assert.equal(refused.status, 401);
      assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal((await call(server, 'GET', '/auth/me', { token: expired.token })).status, 401);

      const id = jwtParts(tokens.id_token as string).payload;
      assert.equal(id.iss, server.baseUrl);
      assert.equal(id.aud, fx.client.id);
      assert.equal(id.azp, fx.client.id);
      assert.equal(id.nonce, nonce);
      assert.equal(typeof id.iat, 'number');
      assert.equal(typeof id.exp, 'number');
      assert.ok(Number(id.exp) > Number(id.iat));

      // The refresh token expires REFRESH_LIFETIME after sign-in, and rotation does not extend it.
      const first = (await introspect(server, fx.client, tokens.refresh_token as string)).body;
      assert.equal(first.active, true);
      const expiry = Number(first.exp);
      assert.ok(Math.abs(expiry - (Number(at.iat) + REFRESH_LIFETIME)) <= 5, `exp ${expiry}`);
      // Simulate an hour passing: the family's expiry moves an hour closer.
      await server.database.db.query(
        `UPDATE refresh_token SET expires_at = expires_at - interval '1 hour' WHERE digest = $1`,
        [digest(tokens.refresh_token as string)],
      );
      const next = await refreshed(tokens.refresh_token as string);
      const second = (await introspect(server, fx.client, next.refresh_token as string)).body;
      assert.equal(second.active, true);
      assert.equal(Number(second.exp), expiry - 3600);
    });

    test('OP-35 refresh rotates; a rotated RT reused after the grace → T(invalid_grant) and the family is revoked', async () => {
      const tokens = await signIn();
      const next = await refreshed(tokens.refresh_token as string);
      assert.notEqual(next.refresh_token, tokens.refresh_token);
      assert.notEqual(next.access_token, tokens.access_token);
      // Within the grace (protocol.md §5, default 10 s) the old token answers the same successor pair.
      const again = await refreshed(tokens.refresh_token as string);
      assert.equal(again.refresh_token, next.refresh_token);
      assert.equal(again.access_token, next.access_token);

      // After the grace (simulated: rotation moved 11 s back) reuse revokes the whole family.
      await ageRotation(server, tokens.refresh_token as string, 11);
      assertT(
        await refresh(server, tokens.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );
      assertT(
        await refresh(server, next.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );
      assert.equal((await userinfo(server, next.access_token)).status, 401);
      assert.equal((await userinfo(server, tokens.access_token)).status, 401);
      assert.deepEqual((await introspect(server, fx.client, next.access_token)).body, { active: false });

      // A client with refreshTokenReuseGrace 0: any reuse revokes at once.
      const strict = await createClient(server, fx, { name: 'no grace' });
      await setClient(server, strict.id, { refreshTokenReuseGrace: 0 });
      const s = await signIn({ clientId: strict.id });
      const sNext = (await refresh(server, s.refresh_token as string, { client_id: strict.id })).body;
      assert.equal(typeof sNext.refresh_token, 'string');
      assertT(await refresh(server, s.refresh_token as string, { client_id: strict.id }), 'invalid_grant');
      assertT(
        await refresh(server, sNext.refresh_token as string, { client_id: strict.id }),
        'invalid_grant',
      );
    });

    test('OP-36 RT presented by another client → T(invalid_grant); requireClientAuth without or with a wrong secret → T401', async () => {
      const other = await createClient(server, fx);
      const tokens = await signIn();
      const rt = tokens.refresh_token as string;
      assertT(await refresh(server, rt, { client_id: other.id }), 'invalid_grant');
      assertT(
        await refresh(server, rt, {}, { authorization: basic(other.id, other.secret) }),
        'invalid_grant',
      );
      assertT401(await refresh(server, rt, {}, { authorization: basic(fx.client.id, 'wrong') }), true);
      assertT401(await refresh(server, rt, { client_id: fx.client.id, client_secret: 'wrong' }), false);
      // None of those attempts consumed the token: the rightful client refreshes with client_id alone
      // (what the Medplum SDK sends), or with no client_id at all (RFC 6749 §3.2: empty = omitted).
      const next = await refreshed(rt);
      const afterEmpty = await refresh(server, next.refresh_token as string, { client_id: '' });
      assert.equal(afterEmpty.status, 200, JSON.stringify(afterEmpty.body));

      const confidential = await createClient(server, fx, { name: 'requires auth' });
      await setClient(server, confidential.id, { requireClientAuth: true });
      const c = await signIn({ clientId: confidential.id, clientSecret: confidential.secret });
      const crt = c.refresh_token as string;
      assertT401(await refresh(server, crt, { client_id: confidential.id }), false);
      assertT401(await refresh(server, crt), false);
      assertT401(await refresh(server, crt, {}, { authorization: basic(confidential.id, 'wrong') }), true);
      const ok = await refresh(
        server,
        crt,
        {},
        { authorization: basic(confidential.id, confidential.secret) },
      );
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    test('OP-37 refresh asking a broader scope → T(invalid_scope); a narrower scope is granted and echoed', async () => {
      const tokens = await signIn({ scope: 'openid profile offline_access' });
      assertT(
        await refresh(server, tokens.refresh_token as string, {
          client_id: fx.client.id,
          scope: 'openid profile email offline_access',
        }),
        'invalid_scope',
      );
      assertT(
        await refresh(server, tokens.refresh_token as string, {
          client_id: fx.client.id,
          scope: 'openid profile offline_access user/*.cruds',
        }),
        'invalid_scope',
      );
      const narrower = await refreshed(tokens.refresh_token as string, { scope: 'openid offline_access' });
      assert.equal(narrower.scope, 'openid offline_access');
      assert.equal(jwtParts(narrower.access_token).payload.scope, 'openid offline_access');
      // The narrowed grant cannot be widened back.
      assertT(
        await refresh(server, narrower.refresh_token as string, {
          client_id: fx.client.id,
          scope: 'openid profile offline_access',
        }),
        'invalid_scope',
      );
    });

    test('OP-38 refresh after logout, revocation or membership deactivation → T(invalid_grant)', async () => {
      const loggedOut = await signIn();
      const logout = await call(server, 'POST', '/oauth2/logout', {
        token: loggedOut.access_token,
        body: {},
        headers: { 'content-type': 'application/fhir+json' },
      });
      assert.equal(logout.status, 200);
      assert.deepEqual(logout.body, {});
      assertT(
        await refresh(server, loggedOut.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );

      const revoked = await signIn();
      const revocation = await postForm(server, '/oauth2/revoke', {
        token: revoked.access_token,
        client_id: fx.client.id,
      });
      assert.equal(revocation.status, 200);
      assertT(
        await refresh(server, revoked.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );

      // Membership deactivation: no admin API yet, so a direct repository update plus the
      // invalidation it will publish (see oauth-flows.ts).
      const member = await inviteUser(server, fx, { email: `member.${Date.now()}@example.com` });
      const theirs = await signIn({ email: member.email, password: member.password });
      assert.equal(
        (await refresh(server, theirs.refresh_token as string, { client_id: fx.client.id })).status,
        200,
      );
      const current = await signIn({ email: member.email, password: member.password });
      await deactivateMembership(server, member.membership.id);
      assertT(
        await refresh(server, current.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );
      assert.equal((await call(server, 'GET', '/auth/me', { token: current.access_token })).status, 401);
    });

    test('OP-39 tampered RT, an AT or ID token as refresh_token, an expired RT → T(invalid_grant)', async () => {
      const tokens = await signIn();
      const rt = tokens.refresh_token as string;
      for (const bad of [
        withLastCharacterChanged(rt),
        `${rt}x`,
        rt.slice(1),
        tokens.access_token,
        tokens.id_token as string,
      ]) {
        assertT(await refresh(server, bad, { client_id: fx.client.id }), 'invalid_grant');
      }
      // Expiry simulated in the database: the token's absolute expiry moved into the past.
      await expireRefreshToken(server, rt);
      assertT(await refresh(server, rt, { client_id: fx.client.id }), 'invalid_grant');
    });

    test('protocol.md §5: a super admin session gets no refresh token', async () => {
      const superAdmin = await call(server, 'POST', '/auth/login', {
        body: {
          email: ADMIN_EMAIL,
          password: ADMIN_PASSWORD,
          // The super admin also administers every fixture project: sign in to its own one.
          projectId: server.adminMembership.project.reference.replace('Project/', ''),
          scope: 'openid offline_access',
          codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          codeChallengeMethod: 'S256',
        },
      });
      assert.equal(typeof superAdmin.body.code, 'string', JSON.stringify(superAdmin.body));
      const redeemed = await postForm(server, '/oauth2/token', {
        grant_type: 'authorization_code',
        code: superAdmin.body.code,
        code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
      });
      assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
      assert.equal(redeemed.body.refresh_token, undefined);
    });
  });
}
