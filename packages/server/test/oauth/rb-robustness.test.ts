/**
 * security-cases.md §4 (RB-01 … RB-09, RB-13, RB-14): robustness of the OAuth endpoints against
 * malformed, oversized, structured and concurrent input, on PGlite and (with TEST_DATABASE_URL)
 * PostgreSQL — some failures (a NUL byte in a stored value) exist on PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CompactSign, generateKeyPair, SignJWT } from 'jose';
import { ENGINES } from '../support/db.ts';
import { basic, createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import {
  assertT,
  authorize,
  authorizeParams,
  createClient,
  hiddenFields,
  introspect,
  inviteUser,
  jwtParts,
  NO_FAILURE_LIMITS,
  passwordCode,
  passwordTokens,
  refresh,
  signInThroughAuthorize,
  submitSignIn,
  type Tokens,
  token,
  userinfo,
} from '../support/oauth-flows.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

const FORM = 'application/x-www-form-urlencoded';

/** A raw POST, so that bodies and content types can be exactly what the case needs. */
async function raw(
  server: TestServer,
  path: string,
  body: BodyInit | undefined,
  headers: Record<string, string> = {},
) {
  const response = await fetch(new URL(path, server.baseUrl), {
    method: 'POST',
    headers,
    body,
    redirect: 'manual',
  });
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: json };
}

for (const engine of ENGINES) {
  describe(`RB-01 … RB-09, RB-13, RB-14 on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;

    before(async () => {
      server = await startServer(engine, NO_FAILURE_LIMITS);
      fx = await createProjectFixture(server);
    });
    after(() => server.close());

    test('RB-01 token, revoke, introspect with a JSON, multipart, text or missing Content-Type → T(invalid_request); GET /oauth2/token → 405', async () => {
      const auth = { authorization: basic(fx.client.id, fx.client.secret) };
      for (const path of ['/oauth2/token', '/oauth2/revoke', '/oauth2/introspect']) {
        const multipart = new FormData();
        multipart.set('grant_type', 'client_credentials');
        multipart.set('token', 'x');
        const answers = [
          await raw(server, path, '{"grant_type":"client_credentials","token":"x"}', {
            ...auth,
            'content-type': 'application/json',
          }),
          await raw(server, path, multipart, auth),
          await raw(server, path, 'grant_type=client_credentials&token=x', {
            ...auth,
            'content-type': 'text/plain',
          }),
          await raw(server, path, new TextEncoder().encode('grant_type=client_credentials&token=x'), auth),
          await raw(server, path, '<x/>', { ...auth, 'content-type': 'application/xml' }),
        ];
        for (const [i, answer] of answers.entries()) {
          assertT(answer, 'invalid_request');
          assert.doesNotMatch(answer.text, /<html/i, `${path} #${i}`);
        }
      }
      const get = await fetch(new URL('oauth2/token', server.baseUrl));
      assert.equal(get.status, 405);
      assert.equal((await get.json()).error, 'invalid_request');
    });

    test('RB-02 malformed percent-encoding (%ZZ, overlong UTF-8, truncated) and %00, in body or query → 400 invalid_request', async () => {
      const auth = { authorization: basic(fx.client.id, fx.client.secret), 'content-type': FORM };
      for (const bad of ['%ZZ', '%C0%AF', '%E0%80%AF', '%ED%A0%80', 'x%2', '%', '%00', 'a%0Db', '%7F']) {
        const inBody = await raw(server, '/oauth2/token', `grant_type=client_credentials&scope=${bad}`, auth);
        assertT(inBody, 'invalid_request');
        const inCode = await raw(
          server,
          '/oauth2/token',
          `grant_type=authorization_code&code=abc${bad}`,
          auth,
        );
        assertT(inCode, 'invalid_request');
        const inQuery = await raw(server, `/oauth2/token?x=${bad}`, 'grant_type=client_credentials', auth);
        assertT(inQuery, 'invalid_request');
        const revoke = await raw(server, '/oauth2/revoke', `token=${bad}`, auth);
        assertT(revoke, 'invalid_request');
        // The authorization endpoint: refused, never redirected with a half-decoded parameter.
        const { params } = authorizeParams(fx);
        const url = new URL('oauth2/authorize', server.baseUrl);
        url.search = `${new URLSearchParams(params as Record<string, string>)}&state=${bad}`;
        const page = await fetch(url, { redirect: 'manual' });
        assert.equal(page.status, 400, `authorize ${bad}`);
        assert.equal(page.headers.get('location'), null, `authorize ${bad}`);
      }
      // A NUL byte in a value the server stores (the nonce) never reaches the database as a 500.
      const nul = await call(server, 'POST', '/auth/login', {
        body: {
          email: fx.admin.email,
          password: fx.admin.password,
          clientId: fx.client.id,
          nonce: 'a\u0000b',
          codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          codeChallengeMethod: 'S256',
        },
      });
      assert.equal(nul.status, 400, JSON.stringify(nul.body));
      // Control: a correctly encoded `%` (as %25) is data, not malformed.
      const ok = await raw(
        server,
        '/oauth2/token',
        'grant_type=client_credentials&scope=openid%20x%25y',
        auth,
      );
      assert.equal(ok.status, 200, ok.text);
    });

    test('RB-03 body over the limit → 413; more than 1000 parameters → 400; a 16 KB+ header block → 431; service stays healthy', async () => {
      const big = await raw(
        server,
        '/oauth2/token',
        `grant_type=client_credentials&pad=${'x'.repeat(1_100_000)}`,
        {
          'content-type': FORM,
        },
      );
      assert.equal(big.status, 413);
      assert.equal(big.body?.error, 'invalid_request');
      const many = Array.from({ length: 1001 }, (_, i) => `p${i}=1`).join('&');
      assertT(
        await raw(server, '/oauth2/token', `grant_type=client_credentials&${many}`, {
          authorization: basic(fx.client.id, fx.client.secret),
          'content-type': FORM,
        }),
        'invalid_request',
      );
      const manyQuery = await fetch(new URL(`oauth2/authorize?${many}`, server.baseUrl), {
        redirect: 'manual',
      });
      assert.equal(manyQuery.status, 400);
      const headers = await fetch(new URL('healthcheck', server.baseUrl), {
        headers: { 'x-big': 'y'.repeat(17_000) },
      }).catch((err: unknown) => err);
      assert.ok(!(headers instanceof Response) || headers.status === 431, 'oversized header block refused');
      assert.equal((await fetch(new URL('healthcheck', server.baseUrl))).status, 200);
    });

    test('RB-04 structured parameters (grant_type[], code[x], __proto__[admin], constructor[prototype][x]) → 400 invalid_request; Object.prototype unchanged', async () => {
      const auth = { authorization: basic(fx.client.id, fx.client.secret), 'content-type': FORM };
      for (const body of [
        'grant_type[]=client_credentials&grant_type[]=authorization_code',
        'grant_type=authorization_code&code[x]=y',
        'grant_type=client_credentials&__proto__[admin]=1',
        'grant_type=client_credentials&constructor[prototype][x]=1',
        'grant_type=client_credentials&grant_type=client_credentials',
      ]) {
        assertT(await raw(server, '/oauth2/token', body, auth), 'invalid_request');
        assertT(
          await raw(server, '/oauth2/introspect', body.replaceAll('grant_type', 'token'), auth),
          'invalid_request',
        );
      }
      // A plain `__proto__` key is just an unknown parameter (ignored), never a prototype.
      assert.equal(
        (await raw(server, '/oauth2/token', 'grant_type=client_credentials&__proto__=x', auth)).status,
        200,
      );
      const page = await fetch(
        new URL(
          `oauth2/authorize?client_id[]=${fx.client.id}&__proto__[admin]=1&constructor[prototype][x]=1`,
          server.baseUrl,
        ),
        { redirect: 'manual' },
      );
      assert.equal(page.status, 400);
      const login = await call(server, 'POST', '/auth/login', {
        body: '{"email":"a@example.com","password":"x","__proto__":{"admin":true}}',
      });
      assert.equal(login.status, 400);
      const probe = {} as Record<string, unknown>;
      assert.equal(probe.admin, undefined);
      assert.equal(probe.x, undefined);
    });

    test('RB-05 oversized state, scope, redirect_uri, client_id → refused; a 256-character state works', async () => {
      const long = authorizeParams(fx, { state: 's'.repeat(64 * 1024) });
      const viaGet = await authorize(server, long.params);
      assert.ok([400, 414, 431].includes(viaGet.status), `GET with a 64 KB state: ${viaGet.status}`);
      assert.equal(viaGet.location, undefined);
      const viaPost = await authorize(server, long.params, { method: 'POST' });
      assert.equal(viaPost.status, 400);
      assert.equal(viaPost.location, undefined);
      const scope = authorizeParams(fx, { scope: `openid ${'x'.repeat(10 * 1024)}` });
      const scopeAnswer = await authorize(server, scope.params);
      assert.equal(scopeAnswer.status, 302);
      assert.equal(scopeAnswer.location?.searchParams.get('error'), 'invalid_request');
      assert.equal(scopeAnswer.location?.searchParams.get('state'), scope.state);
      for (const overrides of [
        { redirect_uri: `https://app.example.com/callback?${'x'.repeat(10 * 1024)}` },
        { client_id: 'c'.repeat(5 * 1024) },
      ]) {
        const response = await authorize(server, authorizeParams(fx, overrides).params);
        assert.equal(response.status, 400);
        assert.equal(response.location, undefined);
      }
      // The token endpoint: a 5 KB client_id is an unknown client, not a crash.
      assert.equal(
        (
          await token(
            server,
            { grant_type: 'client_credentials' },
            { authorization: basic('c'.repeat(5 * 1024), 'x') },
          )
        ).status,
        401,
      );
      const sane = authorizeParams(fx, { state: `${'S'.repeat(200)}-${'x'.repeat(55)}` });
      const result = await signInThroughAuthorize(server, fx, sane.params);
      assert.equal(result.state, sane.state);
    });

    test('RB-06 CR/LF, <script> and " in state or redirect_uri: percent-encoded or escaped, no header injection', async () => {
      const crlf = authorizeParams(fx, { state: 'a\r\nSet-Cookie: injected=1' });
      const refused = await authorize(server, crlf.params);
      assert.equal(refused.status, 400);
      assert.equal(refused.location, undefined);
      assert.ok(!refused.headers.getSetCookie().some((c) => c.includes('injected')));

      const state = `<script>alert("x")</script>'"&`;
      const html = authorizeParams(fx, { state });
      const form = await authorize(server, html.params);
      assert.equal(form.status, 200);
      assert.ok(!form.text.includes('<script>'), 'state unescaped in HTML');
      assert.ok(form.text.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&quot;&amp;'));
      assert.equal(hiddenFields(form.text).state, state);
      const redirect = await submitSignIn(server, form, {
        email: fx.admin.email,
        password: fx.admin.password,
      });
      const location = redirect.headers.get('location') ?? '';
      assert.ok(!/[<>"'\s]/.test(location), location);
      assert.equal(redirect.location?.searchParams.get('state'), state);

      const page = await authorize(
        server,
        authorizeParams(fx, { redirect_uri: 'https://evil.example.com/<script>x</script>' }).params,
      );
      assert.equal(page.status, 400);
      assert.ok(!page.text.includes('<script>'));
      const unknown = await authorize(
        server,
        authorizeParams(fx, { client_id: '"><script>x</script>' }).params,
      );
      assert.equal(unknown.status, 400);
      assert.ok(!unknown.text.includes('<script>'));
    });

    test('RB-07 e-mail variants: ASCII case and spaces map to the account; look-alikes never match it', async () => {
      const stamp = Date.now();
      const alice = await inviteUser(server, fx, { email: `Alice.${stamp}@Example.COM` });
      const stored = `alice.${stamp}@example.com`;
      const jose = await inviteUser(server, fx, { email: `jos\u00e9.${stamp}@example.com` });
      const irem = await inviteUser(server, fx, { email: `irem.${stamp}@example.com` });
      const signIn = (email: string, password: string) =>
        call(server, 'POST', '/auth/login', {
          body: {
            email,
            password,
            clientId: fx.client.id,
            codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
            codeChallengeMethod: 'S256',
          },
        });
      for (const email of [`ALICE.${stamp}@EXAMPLE.com`, `  ${stored}  `, stored]) {
        assert.equal((await signIn(email, alice.password)).status, 200, email);
      }
      assert.equal((await signIn(`jose\u0301.${stamp}@example.com`, jose.password)).status, 200, 'NFD = NFC');
      for (const email of [
        `\u0430lice.${stamp}@example.com`, // Cyrillic а
        `alice.${stamp}\uff20example.com`, // full-width ＠
        `alice\u200b.${stamp}@example.com`, // zero-width space
        `alice.${stamp}@example.com.`, // trailing-dot domain
        `"alice.${stamp}@example.com"@evil.com`,
      ]) {
        const answer = await signIn(email, alice.password);
        assert.equal(answer.status, 400, email);
        assert.equal(answer.body.issue[0].details.text, 'Email or password is invalid');
      }
      // Turkish İ lower-cases to i + U+0307, which is not the ASCII account's i.
      assert.equal((await signIn(`\u0130rem.${stamp}@example.com`, irem.password)).status, 400);
      // Look-alikes are refused at write as well.
      for (const email of [
        `bob\u200b.${stamp}@example.com`,
        `bob.${stamp}\uff20example.com`,
        `bob.${stamp}@example.com.`,
      ]) {
        const invited = await call(server, 'POST', `/admin/projects/${fx.project.id}/invite`, {
          token: fx.admin.token,
          body: {
            resourceType: 'Practitioner',
            firstName: 'B',
            lastName: 'B',
            email,
            password: 'long enough pw 1',
          },
        });
        assert.equal(invited.status, 400, email);
      }
    });

    test('RB-08 one code redeemed by 20 parallel requests → exactly one 200, the rest T(invalid_grant), then the grant is revoked', async () => {
      const { code, pkce } = await passwordCode(server, fx);
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          token(server, {
            grant_type: 'authorization_code',
            code,
            client_id: fx.client.id,
            code_verifier: pkce?.verifier as string,
          }),
        ),
      );
      const ok = answers.filter((a) => a.status === 200);
      assert.equal(ok.length, 1, answers.map((a) => a.status).join(','));
      for (const a of answers.filter((x) => x.status !== 200)) assertT(a, 'invalid_grant');
      const tokens = ok[0]?.body as unknown as Tokens;
      assert.equal((await userinfo(server, tokens.access_token)).status, 401);
      assertT(
        await refresh(server, tokens.refresh_token as string, { client_id: fx.client.id }),
        'invalid_grant',
      );
    });

    test('RB-09 one refresh token used by 10 parallel requests → one successor, the same pair for every caller', async () => {
      const tokens = await passwordTokens(server, fx, { scope: 'openid offline_access' });
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          refresh(server, tokens.refresh_token as string, { client_id: fx.client.id }),
        ),
      );
      for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
      const pairs = new Set(answers.map((a) => `${a.body.access_token}|${a.body.refresh_token}`));
      assert.equal(pairs.size, 1);
      const loginId = jwtParts(tokens.access_token).payload.login_id;
      const live = await server.database.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM refresh_token WHERE login_id = $1 AND rotated_at IS NULL',
        [loginId],
      );
      assert.equal(live[0]?.n, 1);
      const successor = answers[0]?.body.refresh_token as string;
      assert.equal((await refresh(server, successor, { client_id: fx.client.id })).status, 200);
    });

    test('RB-13 malformed JWTs anywhere → refused (401 / 400 / inactive), never a 500', async () => {
      const tokens = await passwordTokens(server, fx, { scope: 'openid offline_access' });
      const claims = jwtParts(tokens.access_token).payload;
      const b64 = (s: string) => Buffer.from(s).toString('base64url');
      const key = server.services.keys.signingKey('ES256');
      const now = Math.floor(Date.now() / 1000);
      // Claims sets a parser might read leniently, signed with the server's own key (as if forged):
      const ownSigned = async (payload: string) =>
        new CompactSign(new TextEncoder().encode(payload))
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid })
          .sign(key.privateKey);
      const common = `"iss":"${server.baseUrl}","aud":"${server.baseUrl}","sub":"${claims.sub}","jti":"j","login_id":"${claims.login_id}","scope":"openid","iat":${now}`;
      const foreign = await generateKeyPair('ES256');
      const malformed = [
        'a.b',
        'a.b.c.d',
        `${tokens.access_token}.x`,
        '@@@.###.$$$',
        `${b64('not json')}.${b64('{}')}.sig`,
        `${b64('{"alg":"none"}')}.${b64(`{${common},"exp":${now + 600}}`)}.`,
        await ownSigned(`{${common},"exp":"9999999999"}`),
        await ownSigned(`{${common},"exp":1e309}`),
        await ownSigned(`{${common},"exp":-1}`),
        await ownSigned(`{${common},"exp":${now + 600},"iat":-5e300}`),
        await new SignJWT({ sub: 'a' })
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid })
          .sign(foreign.privateKey),
        await new CompactSign(new TextEncoder().encode(`{${common},"sub":"other","exp":${now + 600}}`))
          .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid })
          .sign(foreign.privateKey),
      ];
      // Control: the same construction with a sane exp is accepted, so the refusals are about the claim.
      const control = await ownSigned(`{${common},"exp":${now + 600}}`);
      assert.equal((await userinfo(server, control)).status, 200);
      for (const [i, jwt] of malformed.entries()) {
        const me = await call(server, 'GET', '/auth/me', { token: jwt });
        assert.equal(me.status, 401, `auth/me #${i}`);
        const info = await userinfo(server, jwt);
        assert.equal(info.status, 401, `userinfo #${i}`);
        assert.equal(info.body.error, 'invalid_token', `userinfo #${i}`);
        const inspected = await introspect(server, fx.client, jwt);
        assert.deepEqual(inspected.body, { active: false }, `introspect #${i}`);
        assertT(await refresh(server, jwt, { client_id: fx.client.id }), 'invalid_grant');
        assertT(
          await token(server, { grant_type: 'authorization_code', code: jwt, code_verifier: 'x'.repeat(43) }),
          'invalid_grant',
        );
        const assertion = await token(server, {
          grant_type: 'client_credentials',
          client_id: fx.client.id,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: jwt,
        });
        assert.equal(assertion.status, 401, `client_assertion #${i}`);
      }
    });

    test('RB-14 internal errors: JSON {error, error_description} in ASCII, no stack, SQL or internal URL; the process keeps serving', async () => {
      const leak = new Error(
        'relation "login" does not exist at /work/main/packages/server/src/auth/logins.ts:1:1 postgres://fedhir:pw@db.internal:5432/fedhir',
      );
      const { logins, clients, access } = server.services;
      const original = {
        redeemCode: logins.redeemCode.bind(logins),
        get: clients.get.bind(clients),
        resolve: access.resolve.bind(access),
      };
      const assertOpaque = (text: string, name: string, ascii = true) => {
        if (ascii) assert.ok(/^[\x20-\x7e]*$/.test(text), `${name}: non-ASCII`);
        for (const secret of ['relation', '/work/', 'postgres://', 'db.internal', 'logins.ts', '    at ']) {
          assert.ok(!text.includes(secret), `${name} leaks ${secret}`);
        }
      };
      try {
        logins.redeemCode = async () => {
          throw leak;
        };
        const tokenAnswer = await raw(
          server,
          '/oauth2/token',
          `grant_type=authorization_code&code=x&client_id=${fx.client.id}`,
          {
            'content-type': FORM,
          },
        );
        assert.equal(tokenAnswer.status, 500);
        assert.deepEqual(Object.keys(tokenAnswer.body ?? {}).sort(), ['error', 'error_description']);
        assert.equal(tokenAnswer.body?.error, 'server_error');
        assert.equal(tokenAnswer.headers.get('cache-control'), 'no-store');
        assertOpaque(tokenAnswer.text, 'token');

        access.resolve = async () => {
          throw leak;
        };
        const info = await call(server, 'GET', '/oauth2/userinfo', { token: 'a.b.c' });
        assert.equal(info.status, 500);
        assertOpaque(JSON.stringify(info.body), 'userinfo');

        clients.get = async () => {
          throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
        };
        const down = await raw(server, '/oauth2/token', 'grant_type=client_credentials', {
          authorization: basic(fx.client.id, fx.client.secret),
          'content-type': FORM,
        });
        assert.equal(down.status, 503);
        assert.equal(down.body?.error, 'temporarily_unavailable');
        assertOpaque(down.text.replace('10.0.0.5', ''), 'storage down');
        assert.ok(!down.text.includes('10.0.0.5'));
        clients.get = async () => {
          throw leak;
        };
        const page = await authorize(server, authorizeParams(fx).params);
        assert.equal(page.status, 500);
        assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
        assertOpaque(page.text, 'authorize page', false);
      } finally {
        logins.redeemCode = original.redeemCode;
        clients.get = original.get;
        access.resolve = original.resolve;
      }
      assert.equal((await fetch(new URL('healthcheck', server.baseUrl))).status, 200);
      assert.equal((await passwordTokens(server, fx)).token_type, 'Bearer');
      await createClient(server, fx, { name: 'still serving' });
    });
  });
}
