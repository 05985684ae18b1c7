/**
 * No secret in the logs (protocol.md §1 "Secrets … never appear in logs"; §7.12; TX-32): a real server
 * process at LOG_LEVEL=trace runs every flow that handles a secret — the bootstrap admin's sign-in,
 * password sign-in through `@medplum/core` and through the API and the hosted page, a wrong password,
 * client credentials (Basic and post) and a wrong secret, secret rotation, refresh, a replayed code,
 * token exchange against a loopback userinfo server (RFC 8693 and the legacy door, accepted and
 * rejected subject tokens), an identity provider `clientSecret` saved on a ClientApplication, a §3.1
 * callback carrying an upstream code, introspection, revocation and logout — and everything it wrote
 * to stdout and stderr is scanned for every secret used: passwords, client and provider secrets,
 * codes, access, refresh and ID tokens, subject tokens, Basic credentials. One hit fails the test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type Cluster,
  type ClusterNode,
  expectStatus,
  http,
  httpInvite,
  httpProjectFixture,
  httpUpdateClient,
  loginCode,
  type RefusingIdp,
  redeemCode,
  refreshGrant,
  startCluster,
  startRefusingIdp,
} from '../support/cluster.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from '../support/exchange-fedhir.ts';
import { EXT_CLIENT_ID, type ExchangeIdp, startExchangeIdp } from '../support/exchange-idp.ts';
import { basic, type ProjectFixture } from '../support/fixtures.ts';
import { installBrowserShims, medplumClient } from '../support/medplum.ts';
import { authorize, authorizeParams, submitSignIn } from '../support/oauth-flows.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../support/server.ts';

const REDIRECT_URI = 'https://app.example.com/callback';

/** Every secret the flow handled, by name; the scan looks for each (and its encoded forms). */
class Secrets {
  readonly values = new Map<string, string>();

  add(name: string, value: unknown): void {
    if (typeof value !== 'string' || value.length < 8) return;
    this.values.set(name, value);
    // A JWT's signature is what makes it a credential: look for it on its own too.
    const parts = value.split('.');
    if (parts.length === 3 && (parts[2] ?? '').length >= 16)
      this.values.set(`${name} (signature)`, parts[2] as string);
  }

  /** Responses of our token endpoint: every token in them. */
  addTokens(name: string, body: Record<string, unknown> | undefined): void {
    for (const key of ['access_token', 'refresh_token', 'id_token']) this.add(`${name} ${key}`, body?.[key]);
  }

  /** Each secret, and the forms it takes on the wire (form-encoded, JSON-escaped). */
  forms(): [string, string][] {
    const out: [string, string][] = [];
    for (const [name, value] of this.values) {
      const variants = new Set([
        value,
        encodeURIComponent(value),
        new URLSearchParams({ v: value }).toString().slice(2),
        JSON.stringify(value).slice(1, -1),
      ]);
      for (const v of variants) out.push([name, v]);
    }
    return out;
  }
}

describe('secrets never reach the log (LOG_LEVEL=trace, every flow)', () => {
  let cluster: Cluster;
  let node: ClusterNode;
  let idp: ExchangeIdp;
  let refusing: RefusingIdp;
  const secrets = new Secrets();

  before(async () => {
    idp = await startExchangeIdp();
    refusing = await startRefusingIdp();
    cluster = await startCluster({
      env: {
        LOG_LEVEL: 'trace',
        ALLOW_PRIVATE_IDP_URLS: '127.0.0.1',
        RATE_LIMIT_FAILURES_PER_IP: '1000000',
        RATE_LIMIT_FAILURES_PER_SUBJECT: '1000000',
      },
    });
    node = cluster.nodes[0] as ClusterNode;
  });
  after(async () => {
    await cluster?.close();
    await idp?.close();
    await refusing?.close();
  });

  test('a full run of every flow leaves no secret in stdout or stderr', async () => {
    secrets.add('admin password', ADMIN_PASSWORD);

    // The bootstrap super admin signs in with its password; the code and token are secrets too.
    const adminCode = await loginCode(node, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
    secrets.add('super admin code', adminCode.code);
    secrets.add('super admin PKCE verifier', adminCode.pkce.verifier);
    const adminTokens = await redeemCode(node, adminCode);
    expectStatus(adminTokens, 200, 'super admin');
    secrets.addTokens('super admin', adminTokens.body);
    const superToken = adminTokens.body.access_token as string;

    const fx: ProjectFixture = await httpProjectFixture(node, superToken, { redirectUris: [REDIRECT_URI] });
    secrets.add('project admin password', fx.admin.password);
    secrets.add('project admin token', fx.admin.token);
    secrets.add('client secret', fx.client.secret);
    const user = await httpInvite(node, fx.admin.token, fx.project.id, {
      email: `secret.user.${Date.now()}@example.com`,
      password: `user-password-${randomBytes(8).toString('hex')}`,
    });
    secrets.add('user password', user.password);

    // A wrong password and a wrong client secret (failures are logged and audited: without them).
    const wrongPassword = `wrong-password-${randomBytes(8).toString('hex')}`;
    secrets.add('wrong password', wrongPassword);
    expectStatus(
      await http(node, 'POST', '/auth/login', {
        json: {
          email: user.email,
          password: wrongPassword,
          codeChallenge: adminCode.pkce.challenge,
          codeChallengeMethod: 'S256',
        },
      }),
      400,
      'wrong password',
    );
    const wrongSecret = `wrong-secret-${randomBytes(8).toString('hex')}`;
    secrets.add('wrong client secret', wrongSecret);
    expectStatus(
      await http(node, 'POST', '/oauth2/token', {
        form: { grant_type: 'client_credentials' },
        headers: { authorization: basic(fx.client.id, wrongSecret) },
      }),
      401,
      'wrong client secret',
    );

    // @medplum/core: password sign-in, refresh, client credentials, sign-out.
    installBrowserShims();
    const medplum = medplumClient(node.url);
    const started = await medplum.startLogin({
      email: user.email,
      password: user.password,
      projectId: fx.project.id,
    });
    assert.ok(started.code, JSON.stringify(started));
    secrets.add('medplum code', started.code);
    await medplum.processCode(started.code as string);
    secrets.add('medplum access token', medplum.getActiveLogin()?.accessToken);
    secrets.add('medplum refresh token', medplum.getActiveLogin()?.refreshToken);
    await medplum.refreshIfExpired(48 * 3600 * 1000);
    secrets.add('medplum refreshed access token', medplum.getActiveLogin()?.accessToken);
    secrets.add('medplum refreshed refresh token', medplum.getActiveLogin()?.refreshToken);
    await medplum.signOut();
    const machine = medplumClient(node.url);
    await machine.startClientLogin(fx.client.id, fx.client.secret);
    secrets.add('medplum client credentials token', machine.getAccessToken());

    // The API: a code with PKCE and nonce, redeemed; refresh; a replayed code.
    const code = await loginCode(node, {
      email: user.email,
      password: user.password,
      clientId: fx.client.id,
      scope: 'openid offline_access',
    });
    secrets.add('api code', code.code);
    secrets.add('api PKCE verifier', code.pkce.verifier);
    const tokens = await redeemCode(node, code, fx.client.id);
    expectStatus(tokens, 200, 'api tokens');
    secrets.addTokens('api', tokens.body);
    expectStatus(await redeemCode(node, code, fx.client.id), 400, 'replayed code');
    const code2 = await loginCode(node, {
      email: user.email,
      password: user.password,
      clientId: fx.client.id,
    });
    secrets.add('api code 2', code2.code);
    const tokens2 = await redeemCode(node, code2, fx.client.id);
    secrets.addTokens('api 2', tokens2.body);
    const refreshed = await refreshGrant(node, tokens2.body.refresh_token);
    expectStatus(refreshed, 200, 'refresh');
    secrets.addTokens('refreshed', refreshed.body);

    // The hosted page: the code travels in a Location header, the CSRF value in a cookie and a form.
    const { params, pkce } = authorizeParams(fx);
    const form = await authorize({ baseUrl: node.url }, params);
    const page = await submitSignIn({ baseUrl: node.url }, form, {
      email: user.email,
      password: user.password,
    });
    const pageCode = page.location?.searchParams.get('code');
    assert.ok(pageCode, `hosted sign-in: ${page.status}`);
    secrets.add('hosted page code', pageCode);
    secrets.add('hosted page PKCE verifier', pkce.verifier);
    const pageTokens = await http(node, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'authorization_code',
        code: pageCode,
        code_verifier: pkce.verifier,
        client_id: fx.client.id,
        redirect_uri: REDIRECT_URI,
      },
    });
    expectStatus(pageTokens, 200, 'hosted page tokens');
    secrets.addTokens('hosted page', pageTokens.body);

    // Client credentials, Basic and post.
    for (const [how, request] of [
      [
        'basic',
        {
          form: { grant_type: 'client_credentials' },
          headers: { authorization: basic(fx.client.id, fx.client.secret) },
        },
      ],
      [
        'post',
        {
          form: {
            grant_type: 'client_credentials',
            client_id: fx.client.id,
            client_secret: fx.client.secret,
          },
        },
      ],
    ] as const) {
      const r = await http(node, 'POST', '/oauth2/token', request);
      expectStatus(r, 200, `client credentials (${how})`);
      secrets.addTokens(`client credentials ${how}`, r.body);
    }
    secrets.add('basic credentials', basic(fx.client.id, fx.client.secret).slice('Basic '.length));

    // A provider clientSecret saved on a ClientApplication, and token exchange against the loopback
    // provider's userinfo: accepted and rejected subject tokens, both doors.
    const providerSecret = `provider-secret-${randomBytes(12).toString('hex')}`;
    secrets.add('provider client secret', providerSecret);
    const exchangeApp = await http(node, 'POST', `/admin/projects/${fx.project.id}/client`, {
      token: superToken,
      json: { name: 'exchange', redirectUris: [REDIRECT_URI] },
    });
    expectStatus(exchangeApp, 201, 'exchange client');
    secrets.add('exchange client secret', exchangeApp.body.secret);
    expectStatus(
      await httpUpdateClient(node, fx.admin.token, exchangeApp.body.id, {
        identityProvider: {
          userInfoUrl: idp.userinfoUrl,
          clientId: EXT_CLIENT_ID,
          clientSecret: providerSecret,
        },
      }),
      200,
      'identity provider with a client secret',
    );
    const sub = idp.account(user.email);
    const subjectToken = await idp.accessToken(sub);
    secrets.add('subject token', subjectToken);
    const exchanged = await http(node, 'POST', '/oauth2/token', {
      form: {
        grant_type: TOKEN_EXCHANGE,
        subject_token_type: ACCESS_TOKEN_TYPE,
        subject_token: subjectToken,
        client_id: exchangeApp.body.id,
      },
    });
    expectStatus(exchanged, 200, 'token exchange');
    secrets.addTokens('exchanged', exchanged.body);
    const legacySubject = await idp.accessToken(sub);
    secrets.add('legacy subject token', legacySubject);
    const legacy = await http(node, 'POST', '/auth/exchange', {
      json: { externalAccessToken: legacySubject, clientId: exchangeApp.body.id },
    });
    expectStatus(legacy, 200, 'legacy exchange');
    secrets.addTokens('legacy exchanged', legacy.body);
    const rejectedSubject = `rejected-subject-${randomBytes(12).toString('hex')}`;
    secrets.add('rejected subject token', rejectedSubject);
    expectStatus(
      await http(node, 'POST', '/oauth2/token', {
        form: {
          grant_type: TOKEN_EXCHANGE,
          subject_token_type: ACCESS_TOKEN_TYPE,
          subject_token: rejectedSubject,
          client_id: exchangeApp.body.id,
        },
      }),
      400,
      'rejected subject token',
    );

    // A §3.1 callback with an upstream code, redeemed (and refused) at a loopback token endpoint with
    // the provider secret.
    const federated = await http(node, 'POST', `/admin/projects/${fx.project.id}/client`, {
      token: superToken,
      json: { name: 'federated', redirectUris: [REDIRECT_URI] },
    });
    const upstreamSecret = `upstream-secret-${randomBytes(12).toString('hex')}`;
    secrets.add('upstream provider secret', upstreamSecret);
    expectStatus(
      await httpUpdateClient(node, fx.admin.token, federated.body.id, {
        identityProvider: {
          authorizeUrl: `${refusing.url}/authorize`,
          tokenUrl: `${refusing.url}/token`,
          userInfoUrl: `${refusing.url}/userinfo`,
          clientId: 'upstream-client',
          clientSecret: upstreamSecret,
        },
      }),
      200,
      'federated client',
    );
    const upstreamCode = `upstream-code-${randomBytes(12).toString('hex')}`;
    secrets.add('upstream code', upstreamCode);
    const state = JSON.stringify({
      clientId: federated.body.id,
      redirectUri: REDIRECT_URI,
      codeChallenge: pkce.challenge,
      codeChallengeMethod: 'S256',
    });
    const callback = await http(
      node,
      'GET',
      `/auth/external?${new URLSearchParams({ code: upstreamCode, state })}`,
    );
    expectStatus(callback, 400, 'refused upstream code');
    assert.ok((refusing.calls['/token'] ?? 0) >= 1, 'the upstream code was sent to the provider');

    // Secret rotation: the new secret is answered once.
    const rotated = await http(
      node,
      'POST',
      `/admin/projects/${fx.project.id}/client/${fx.client.id}/secret`,
      {
        token: superToken,
      },
    );
    expectStatus(rotated, 200, 'secret rotation');
    secrets.add('rotated client secret', rotated.body.secret);
    expectStatus(
      await http(node, 'POST', '/oauth2/token', {
        form: {
          grant_type: 'client_credentials',
          client_id: fx.client.id,
          client_secret: rotated.body.secret,
        },
      }),
      200,
      'client credentials with the rotated secret',
    );

    // Introspection, revocation, logout.
    for (const value of [tokens.body.access_token, refreshed.body.refresh_token]) {
      expectStatus(
        await http(node, 'POST', '/oauth2/introspect', {
          form: { token: value },
          headers: { authorization: basic(exchangeApp.body.id, exchangeApp.body.secret) },
        }),
        200,
        'introspection',
      );
    }
    expectStatus(
      await http(node, 'POST', '/oauth2/revoke', {
        form: { token: refreshed.body.refresh_token, client_id: fx.client.id },
      }),
      200,
      'revocation',
    );
    expectStatus(
      await http(node, 'POST', '/oauth2/logout', { token: tokens.body.access_token, json: {} }),
      200,
      'logout (POST)',
    );
    expectStatus(
      await http(node, 'GET', '/oauth2/logout', { token: pageTokens.body.access_token }),
      200,
      'logout (GET)',
    );
    expectStatus(
      await http(node, 'GET', '/auth/me', { token: tokens.body.access_token }),
      401,
      'after logout',
    );

    // Stop the server gracefully so that every buffered line (and the audit trail) is written out.
    await cluster.kill(0, 'SIGTERM');
    const output = cluster.output(0);
    const lines = output.split('\n');

    // The capture works: the log is at trace level and names the requests this test made.
    for (const path of [
      '/auth/login',
      '/oauth2/token',
      '/oauth2/introspect',
      '/oauth2/revoke',
      '/oauth2/logout',
      '/auth/exchange',
      '/auth/external',
    ]) {
      assert.ok(output.includes(`"path":"${path}"`), `the log names ${path}: ${output.slice(0, 500)}`);
    }
    assert.ok(lines.length > 50, `a trace-level log (${lines.length} lines)`);
    assert.ok(secrets.values.size >= 40, `${secrets.values.size} secrets collected`);

    const hits: string[] = [];
    for (const [name, value] of secrets.forms()) {
      const line = lines.find((l) => l.includes(value));
      if (line) hits.push(`${name}: ${line.replaceAll(value, '<SECRET>').slice(0, 400)}`);
    }
    assert.deepEqual(hits, [], 'secrets found in the server output');
  });
});
