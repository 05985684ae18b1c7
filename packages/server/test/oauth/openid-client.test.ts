/**
 * An independent, certified relying party (`openid-client` v6, OpenID Certified) against a real
 * listening fedhir: discovery, client_credentials, introspection, revocation and the full
 * authorization-code flow through the hosted sign-in page, with openid-client's own validation of the
 * authorization response (`state`, RFC 9207 `iss`), the ID token (RS256 signature, `iss`, `aud`,
 * `nonce`, `exp`) and userinfo (`sub`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as client from 'openid-client';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { authorize, jwtParts, submitSignIn } from '../support/oauth-flows.ts';
import { startServer, type TestServer } from '../support/server.ts';

describe('openid-client v6 against fedhir', () => {
  let server: TestServer;
  let fx: ProjectFixture;
  let post: client.Configuration;
  let basicAuth: client.Configuration;

  before(async () => {
    server = await startServer('pglite');
    fx = await createProjectFixture(server);
    const options = { execute: [client.allowInsecureRequests] };
    post = await client.discovery(
      new URL(server.baseUrl),
      fx.client.id,
      undefined,
      client.ClientSecretPost(fx.client.secret),
      options,
    );
    basicAuth = await client.discovery(
      new URL(server.baseUrl),
      fx.client.id,
      undefined,
      client.ClientSecretBasic(fx.client.secret),
      options,
    );
  });
  after(() => server.close());

  test('discovery: issuer is BASE_URL exactly, and the metadata advertises what fedhir implements', () => {
    const metadata = post.serverMetadata();
    assert.equal(metadata.issuer, server.baseUrl);
    assert.equal(metadata.token_endpoint, `${server.baseUrl}oauth2/token`);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
    assert.ok(metadata.supportsPKCE());
  });

  test('client_credentials (client_secret_post and client_secret_basic): a token without refresh token', async () => {
    for (const config of [post, basicAuth]) {
      const tokens = await client.clientCredentialsGrant(config, { scope: 'openid' });
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.equal(typeof tokens.access_token, 'string');
      assert.equal(tokens.refresh_token, undefined);
      assert.equal(tokens.id_token, undefined);
      const { header, payload: claims } = jwtParts(tokens.access_token);
      assert.equal(claims.sub, fx.client.id);
      assert.equal(claims.client_id, fx.client.id);
      assert.equal(claims.iss, server.baseUrl);
      // protocol.md §5: exactly RFC 9068's header and the listed claims, none more, none missing.
      assert.deepEqual(Object.keys(header).sort(), ['alg', 'kid', 'typ']);
      assert.deepEqual([header.alg, header.typ], ['ES256', 'at+jwt']);
      assert.deepEqual(Object.keys(claims).sort(), [
        'aud',
        'client_id',
        'exp',
        'iat',
        'iss',
        'jti',
        'login_id',
        'nbf',
        'profile',
        'scope',
        'sub',
        'username',
      ]);
      assert.equal(claims.aud, server.baseUrl);
      assert.ok(Number.isSafeInteger(claims.iat) && claims.nbf === claims.iat);
      assert.ok(Number(claims.exp) - Number(claims.iat) >= 300, 'lifetime over 5 min');
    }
  });

  test('introspection, then revocation: active true, then active false', async () => {
    const tokens = await client.clientCredentialsGrant(basicAuth, { scope: 'openid' });
    const before = await client.tokenIntrospection(basicAuth, tokens.access_token);
    assert.equal(before.active, true);
    assert.equal(before.client_id, fx.client.id);
    assert.equal(before.sub, fx.client.id);
    await client.tokenRevocation(basicAuth, tokens.access_token, { token_type_hint: 'access_token' });
    const afterRevocation = await client.tokenIntrospection(basicAuth, tokens.access_token);
    assert.deepEqual({ ...afterRevocation }, { active: false });
    // A new client_credentials grant opens a new client login: it works again.
    const again = await client.clientCredentialsGrant(basicAuth, { scope: 'openid' });
    assert.equal((await client.tokenIntrospection(basicAuth, again.access_token)).active, true);
  });

  test('authorization code + PKCE through the hosted sign-in page; ID token, userinfo, refresh', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const redirectUri = fx.client.redirectUris?.[0] as string;
    const url = client.buildAuthorizationUrl(post, {
      redirect_uri: redirectUri,
      scope: 'openid profile email offline_access',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    assert.equal(url.origin + url.pathname, `${server.baseUrl}oauth2/authorize`);

    // The browser: GET the page, keep its cookie, post the form back with the credentials.
    const form = await authorize(server, Object.fromEntries(url.searchParams));
    assert.equal(form.status, 200);
    const redirect = await submitSignIn(server, form, { email: fx.admin.email, password: fx.admin.password });
    assert.equal(redirect.status, 302, redirect.text);
    const callback = redirect.location as URL;
    assert.equal(callback.origin + callback.pathname, redirectUri);
    assert.equal(callback.searchParams.get('iss'), server.baseUrl);

    // openid-client checks state, iss (advertised as supported, so required), the code exchange,
    // and the ID token: RS256 signature from the JWKS, iss, aud, exp, iat, nonce.
    const tokens = await client.authorizationCodeGrant(post, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    assert.ok(idClaims);
    assert.equal(jwtParts(tokens.id_token as string).header.alg, 'RS256');
    assert.equal(idClaims.iss, server.baseUrl);
    assert.equal(idClaims.aud, fx.client.id);
    assert.equal(idClaims.nonce, nonce);
    assert.equal(`${idClaims.sub}`, fx.admin.membership.user.reference.replace('User/', ''));
    assert.equal(typeof tokens.refresh_token, 'string');
    assert.equal(tokens.scope, 'openid profile email offline_access');

    const info = await client.fetchUserInfo(post, tokens.access_token, idClaims.sub);
    assert.equal(info.sub, idClaims.sub);
    assert.equal(info.email, fx.admin.email);

    const refreshed = await client.refreshTokenGrant(post, tokens.refresh_token as string);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    assert.equal(refreshed.claims()?.sub, idClaims.sub);

    // Control for the checks above: a wrong state, or an `iss` that is not the issuer, is refused by
    // the RP before any token request (the server echoed the real ones).
    for (const tamper of [
      (u: URL) => u.searchParams.set('state', 'not-the-state'),
      (u: URL) => u.searchParams.set('iss', `${server.baseUrl}x`),
    ]) {
      const again = await authorize(server, Object.fromEntries(url.searchParams));
      const second = await submitSignIn(server, again, {
        email: fx.admin.email,
        password: fx.admin.password,
      });
      const tampered = new URL(second.location as URL);
      tamper(tampered);
      await assert.rejects(
        client.authorizationCodeGrant(post, tampered, {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
        }),
      );
    }
  });

  test('the refresh token is revocable through openid-client, and then refused', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(basicAuth, {
      redirect_uri: fx.client.redirectUris?.[0] as string,
      scope: 'openid offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const form = await authorize(server, Object.fromEntries(url.searchParams));
    const redirect = await submitSignIn(server, form, { email: fx.admin.email, password: fx.admin.password });
    const tokens = await client.authorizationCodeGrant(basicAuth, redirect.location as URL, {
      pkceCodeVerifier: verifier,
    });
    await client.tokenRevocation(basicAuth, tokens.refresh_token as string, {
      token_type_hint: 'refresh_token',
    });
    await assert.rejects(
      client.refreshTokenGrant(basicAuth, tokens.refresh_token as string),
      (err: unknown) => {
        assert.ok(err instanceof client.ResponseBodyError);
        assert.equal(err.error, 'invalid_grant');
        return true;
      },
    );
    await assert.rejects(client.fetchUserInfo(basicAuth, tokens.access_token, client.skipSubjectCheck));
  });
});
