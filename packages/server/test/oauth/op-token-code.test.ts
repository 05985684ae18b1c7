/**
 * security-cases.md §3b (OP-18 … OP-27) and OP-33: the token endpoint's code grant, PKCE and grant
 * allow-list, on PGlite and (with TEST_DATABASE_URL) PostgreSQL. T(x) = 400 `{error: x}` with
 * `Cache-Control: no-store`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES } from '../support/db.ts';
import { basic, createProjectFixture, type ProjectFixture, postForm } from '../support/fixtures.ts';
import {
  assertT,
  assertT401,
  authorizeCode,
  createClient,
  expireCode,
  introspect,
  NO_FAILURE_LIMITS,
  passwordCode,
  passwordTokens,
  pkcePair,
  refresh,
  setClient,
  type Tokens,
  token,
  userinfo,
} from '../support/oauth-flows.ts';
import { startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`OP-18 … OP-27, OP-33: code grant on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;

    before(async () => {
      server = await startServer(engine, NO_FAILURE_LIMITS);
      fx = await createProjectFixture(server);
    });
    after(() => server.close());

    const redeem = (code: string, verifier: string | undefined, extra: Record<string, string> = {}) =>
      token(server, {
        grant_type: 'authorization_code',
        code,
        client_id: fx.client.id,
        ...(verifier ? { code_verifier: verifier } : {}),
        ...extra,
      });

    test('OP-18 code reused immediately → T(invalid_grant)', async () => {
      const { code, pkce } = await passwordCode(server, fx);
      const first = await redeem(code, pkce?.verifier);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assertT(await redeem(code, pkce?.verifier), 'invalid_grant');
    });

    test('OP-19 code reused later → T(invalid_grant), and the first redemption’s AT and RT are revoked', async () => {
      const { code, pkce } = await passwordCode(server, fx, { scope: 'openid offline_access' });
      const first = await redeem(code, pkce?.verifier);
      assert.equal(first.status, 200);
      const tokens = first.body as unknown as Tokens;
      // Controls: everything works before the reuse.
      assert.equal((await userinfo(server, tokens.access_token)).status, 200);
      assert.equal((await introspect(server, fx.client, tokens.access_token)).body.active, true);

      assertT(await redeem(code, pkce?.verifier), 'invalid_grant');

      const info = await userinfo(server, tokens.access_token);
      assert.equal(info.status, 401);
      assert.match(info.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assertT(
        await refresh(server, tokens.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );
      assert.deepEqual((await introspect(server, fx.client, tokens.access_token)).body, { active: false });
      assert.deepEqual((await introspect(server, fx.client, tokens.refresh_token as string)).body, {
        active: false,
      });
    });

    test('OP-20 code used after its lifetime → T(invalid_grant); the lifetime is ≤ 10 min', async () => {
      const { code, pkce } = await passwordCode(server, fx);
      const [row] = await server.database.db.query<{ seconds: number }>(
        `SELECT EXTRACT(EPOCH FROM code_expires_at - created_at)::float AS seconds FROM login
          WHERE code_digest IS NOT NULL ORDER BY created_at DESC LIMIT 1`,
      );
      assert.ok(row && row.seconds > 0 && row.seconds <= 600, `code lifetime ${row?.seconds}`);
      // Time passing is simulated in the database: the code's expiry is moved into the past.
      await expireCode(server, code);
      assertT(await redeem(code, pkce?.verifier), 'invalid_grant');
    });

    test('OP-21 code issued to client A, redeemed by client B → T(invalid_grant)', async () => {
      const other = await createClient(server, fx);
      const a = await passwordCode(server, fx);
      assertT(
        await token(
          server,
          { grant_type: 'authorization_code', code: a.code, code_verifier: a.pkce?.verifier as string },
          { authorization: basic(other.id, other.secret) },
        ),
        'invalid_grant',
      );
      const b = await passwordCode(server, fx);
      assertT(
        await token(server, {
          grant_type: 'authorization_code',
          code: b.code,
          client_id: other.id,
          code_verifier: b.pkce?.verifier as string,
        }),
        'invalid_grant',
      );
    });

    test('OP-22 redirect_uri at the token endpoint ≠ the authorization request’s, or omitted → T(invalid_grant)', async () => {
      const differs = await authorizeCode(server, fx);
      assertT(
        await redeem(differs.code, differs.pkce.verifier, { redirect_uri: 'https://app.example.com/other' }),
        'invalid_grant',
      );
      const omitted = await authorizeCode(server, fx);
      assertT(await redeem(omitted.code, omitted.pkce.verifier), 'invalid_grant');
      // Control: the same redirect_uri succeeds.
      const same = await authorizeCode(server, fx);
      assert.equal(
        (await redeem(same.code, same.pkce.verifier, { redirect_uri: same.redirectUri })).status,
        200,
      );
      // Medplum-compatible /auth/login codes carry no redirect_uri; PKCE binds them (protocol.md §3.1):
      // the SDK's page origin, or nothing, is accepted.
      const sdk = await passwordCode(server, fx);
      const sdkRedeemed = await redeem(sdk.code, sdk.pkce?.verifier, {
        redirect_uri: 'http://localhost:8000/',
      });
      assert.equal(sdkRedeemed.status, 200, JSON.stringify(sdkRedeemed.body));
    });

    test('OP-23 code_verifier missing → T(invalid_grant)', async () => {
      const viaLogin = await passwordCode(server, fx);
      assertT(await redeem(viaLogin.code, undefined), 'invalid_grant');
      const viaAuthorize = await authorizeCode(server, fx);
      assertT(
        await redeem(viaAuthorize.code, undefined, { redirect_uri: viaAuthorize.redirectUri }),
        'invalid_grant',
      );
    });

    test('OP-24 wrong code_verifier (the challenge itself, 42 or 129 chars, illegal characters) → T(invalid_grant)', async () => {
      const wrongs = (pkce: { verifier: string; challenge: string }) => [
        pkce.challenge,
        pkce.verifier.slice(0, 42),
        `${pkce.verifier}${'a'.repeat(129 - pkce.verifier.length)}`,
        `${pkce.verifier.slice(0, 42)}+`,
        `${pkce.verifier.slice(0, 42)} `,
        pkcePair().verifier,
      ];
      for (const i of wrongs(pkcePair()).keys()) {
        const { code, pkce } = await passwordCode(server, fx);
        const wrong = wrongs(pkce as { verifier: string; challenge: string })[i] as string;
        assertT(await redeem(code, wrong), 'invalid_grant');
      }
    });

    test('OP-25 PKCE downgrade: no challenge at authorize (pkceOptional client), code_verifier at token → T(invalid_grant)', async () => {
      const optional = await createClient(server, fx, { name: 'PKCE optional' });
      await setClient(server, optional.id, { pkceOptional: true });
      const downgraded = await passwordCode(server, fx, { clientId: optional.id, pkce: null });
      assertT(
        await token(server, {
          grant_type: 'authorization_code',
          code: downgraded.code,
          client_id: optional.id,
          code_verifier: pkcePair().verifier,
        }),
        'invalid_grant',
      );
      // Control: the same client without a verifier.
      const plain = await passwordCode(server, fx, { clientId: optional.id, pkce: null });
      const ok = await token(server, {
        grant_type: 'authorization_code',
        code: plain.code,
        client_id: optional.id,
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    test('OP-26 random or guessed codes, values from other namespaces, a used code with changed case → T(invalid_grant)', async () => {
      const { code, login, pkce } = await passwordCode(server, fx);
      // Codes carry ≥ 128 bits: 32 random bytes, base64url.
      assert.ok(/^[A-Za-z0-9_-]{43,}$/.test(code), code);
      const tokens = await passwordTokens(server, fx);
      const used = await passwordCode(server, fx);
      assert.equal((await redeem(used.code, used.pkce?.verifier)).status, 200);
      const swapCase = (s: string) =>
        s.replace(/[a-z]/gi, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
      for (const guess of [
        pkcePair().verifier,
        'x',
        login,
        fx.client.id,
        tokens.refresh_token as string,
        tokens.access_token,
        swapCase(used.code),
        'A'.repeat(600),
      ]) {
        assertT(await redeem(guess, pkce?.verifier), 'invalid_grant');
      }
      // The real code still works: failed guesses do not burn it.
      assert.equal((await redeem(code, pkce?.verifier)).status, 200);
    });

    test('OP-27 grant_type password, implicit or unknown → T(unsupported_grant_type); client not enabled for client_credentials → T(unauthorized_client)', async () => {
      for (const grantType of ['password', 'implicit', 'urn:example:unknown', 'AUTHORIZATION_CODE']) {
        assertT(
          await token(server, {
            grant_type: grantType,
            client_id: fx.client.id,
            username: 'a',
            password: 'b',
          }),
          'unsupported_grant_type',
        );
      }
      assertT(await token(server, { client_id: fx.client.id }), 'invalid_request');
      const limited = await createClient(server, fx, { name: 'code only' });
      await setClient(server, limited.id, { grantType: ['authorization_code', 'refresh_token'] });
      assertT(
        await token(
          server,
          { grant_type: 'client_credentials' },
          { authorization: basic(limited.id, limited.secret) },
        ),
        'unauthorized_client',
      );
    });

    test('OP-33 every token-endpoint response: Cache-Control no-store, Pragma no-cache, Content-Type JSON', async () => {
      const responses: { name: string; response: { status: number; headers: Headers } }[] = [];
      const { code, pkce } = await passwordCode(server, fx);
      const codeOk = await redeem(code, pkce?.verifier);
      responses.push({ name: 'code 200', response: codeOk });
      responses.push({ name: 'code reuse 400', response: await redeem(code, pkce?.verifier) });
      responses.push({
        name: 'refresh 200',
        response: await refresh(server, codeOk.body.refresh_token as string, { client_id: fx.client.id }),
      });
      responses.push({ name: 'refresh 400', response: await refresh(server, 'nope') });
      responses.push({
        name: 'client_credentials 200',
        response: await token(
          server,
          { grant_type: 'client_credentials' },
          { authorization: basic(fx.client.id, fx.client.secret) },
        ),
      });
      responses.push({
        name: 'invalid_client 401',
        response: await token(
          server,
          { grant_type: 'client_credentials' },
          { authorization: basic(fx.client.id, 'wrong') },
        ),
      });
      responses.push({
        name: 'token exchange',
        response: await token(server, {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          client_id: fx.client.id,
          subject_token: 'x',
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        }),
      });
      responses.push({
        name: 'unsupported_grant_type',
        response: await token(server, { grant_type: 'password' }),
      });
      responses.push({
        name: 'JSON body',
        response: await fetch(new URL('oauth2/token', server.baseUrl), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"grant_type":"client_credentials"}',
        }),
      });
      responses.push({ name: 'GET 405', response: await fetch(new URL('oauth2/token', server.baseUrl)) });
      responses.push({
        name: 'body too large',
        response: await postForm(server, '/oauth2/token', {
          grant_type: 'client_credentials',
          pad: 'x'.repeat(1_100_000),
        }),
      });
      for (const { name, response } of responses) {
        assert.equal(response.headers.get('cache-control'), 'no-store', name);
        assert.equal(response.headers.get('pragma'), 'no-cache', name);
        assert.match(response.headers.get('content-type') ?? '', /^application\/json/, name);
      }
      assert.equal(responses.find((r) => r.name === 'code 200')?.response.status, 200);
      assert.equal(responses.find((r) => r.name === 'client_credentials 200')?.response.status, 200);
      assert.equal(responses.find((r) => r.name === 'body too large')?.response.status, 413);
      assertT401((responses.find((r) => r.name === 'invalid_client 401')?.response ?? {}) as never, true);
    });
  });
}
