/**
 * The guarded fetch as an ordinary `fetch` on the happy path: buffered responses that callers can
 * `.json()`, request bodies, keep-alive reuse (it sits on the token-exchange hot path,
 * performance.md), and the two libraries that receive it as `customFetch`: jose and oauth4webapi.
 * Loopback only.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  createRemoteJWKSet,
  exportJWK,
  generateKeyPair,
  customFetch as joseCustomFetch,
  jwtVerify,
  SignJWT,
} from 'jose';
import { allowInsecureRequests, customFetch, discoveryRequest, processDiscoveryResponse } from 'oauth4webapi';
import { createGuardedFetch, type GuardedFetch } from '../../src/federation/outbound/guarded-fetch.ts';
import { OutboundError } from '../../src/federation/outbound/outbound-error.ts';
import { type CountingServer, startHttpServer } from './loopback-servers.ts';

type Route = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('guarded fetch: HTTP behaviour and library interop', () => {
  let server: CountingServer;
  let fetcher: GuardedFetch;
  const routes = new Map<string, Route>();

  before(async () => {
    server = await startHttpServer('127.0.0.1', (req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      readBody(req).then((body) => {
        const route = routes.get(path);
        if (route) route(req, res, body);
        else {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ path }));
        }
      });
    });
    fetcher = createGuardedFetch({ allow: ['127.0.0.1'], timeoutMs: 2000 });
  });
  after(async () => {
    await fetcher.close();
    await server.close();
  });

  test('(j) JSON with the upstream status and headers', async () => {
    routes.set('/userinfo', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'r1' });
      res.end(JSON.stringify({ sub: 'u1', email: 'a@example.com' }));
    });
    const response = await fetcher(`${server.origin}/userinfo`, { headers: { authorization: 'Bearer t' } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('x-request-id'), 'r1');
    assert.ok(response instanceof Response);
    assert.deepEqual(await response.json(), { sub: 'u1', email: 'a@example.com' });
  });

  test('(j) keep-alive: sequential requests reuse the pooled connection', async () => {
    const fresh = await startHttpServer('127.0.0.1', (_req, res) => res.end('{}'));
    const pooled = createGuardedFetch({ allow: ['127.0.0.1'] });
    try {
      for (let i = 0; i < 10; i++) {
        await (await pooled(`${fresh.origin}/`)).json();
        // undici hands a socket back to the pool one event-loop turn after a response completes
        // (client-h1.js onMessageComplete), so a call issued in the very same turn opens a second one.
        await nextTurn();
      }
      assert.equal(fresh.requests, 10);
      assert.equal(fresh.connections, 1);
      // Back to back, with no turn in between, the pool settles on at most two connections.
      for (let i = 0; i < 10; i++) await (await pooled(`${fresh.origin}/`)).json();
      assert.equal(fresh.requests, 20);
      assert.ok(fresh.connections <= 2, `${fresh.connections} connections`);
    } finally {
      await pooled.close();
      await fresh.close();
    }
  });

  test('form-encoded POST bodies and headers are sent (token, introspection)', async () => {
    let seen: { method?: string; type?: string; body?: string } = {};
    routes.set('/token', (req, res, body) => {
      seen = { method: req.method, type: req.headers['content-type'], body };
      res.setHeader('content-type', 'application/json');
      res.end('{"access_token":"a","token_type":"Bearer"}');
    });
    const response = await fetcher(`${server.origin}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'c' }),
    });
    assert.deepEqual(await response.json(), { access_token: 'a', token_type: 'Bearer' });
    assert.equal(seen.method, 'POST');
    assert.match(seen.type ?? '', /^application\/x-www-form-urlencoded/);
    assert.equal(seen.body, 'grant_type=authorization_code&code=c');
  });

  test('a Request object is accepted, body included', async () => {
    let seen = '';
    routes.set('/introspect', (_req, res, body) => {
      seen = body;
      res.end('{"active":false}');
    });
    const request = new Request(`${server.origin}/introspect`, { method: 'POST', body: 'token=x' });
    const response = await fetcher(request);
    assert.deepEqual(await response.json(), { active: false });
    assert.equal(seen, 'token=x');
  });

  test('error statuses pass through with their body (OAuth error responses)', async () => {
    routes.set('/error', (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":"invalid_grant"}');
    });
    const response = await fetcher(`${server.origin}/error`);
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), { error: 'invalid_grant' });
  });

  test('a gzip body is decoded and its coding headers dropped', async () => {
    const compressed = gzipSync(JSON.stringify({ keys: [] }));
    routes.set('/gzip', (_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': compressed.length,
      });
      res.end(compressed);
    });
    const response = await fetcher(`${server.origin}/gzip`);
    assert.equal(response.headers.get('content-encoding'), null);
    assert.equal(response.headers.get('content-length'), null);
    assert.deepEqual(await response.json(), { keys: [] });
  });

  test('204 answers with a null body', async () => {
    routes.set('/revoke', (_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const response = await fetcher(`${server.origin}/revoke`, { method: 'POST' });
    assert.equal(response.status, 204);
    assert.equal(response.body, null);
  });

  test('jose: createRemoteJWKSet fetches through the guard', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    routes.set('/jwks', (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    const token = await new SignJWT({ sub: 'u1' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(server.origin)
      .setExpirationTime('5m')
      .sign(privateKey);
    const jwks = createRemoteJWKSet(new URL(`${server.origin}/jwks`), { [joseCustomFetch]: fetcher });
    const { payload } = await jwtVerify(token, jwks, { issuer: server.origin });
    assert.equal(payload.sub, 'u1');

    // A JWKS URL the guard refuses surfaces as the guard's error.
    const blocked = createRemoteJWKSet(new URL(`https://127.0.0.2:${server.port}/jwks`), {
      [joseCustomFetch]: fetcher,
    });
    await assert.rejects(jwtVerify(token, blocked), (error) => {
      assert.ok(error instanceof OutboundError);
      assert.equal(error.code, 'blocked_address');
      return true;
    });
  });

  test('oauth4webapi: discovery through the guard', async () => {
    routes.set('/.well-known/openid-configuration', (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer: server.origin,
          token_endpoint: `${server.origin}/token`,
          jwks_uri: `${server.origin}/jwks`,
        }),
      );
    });
    const issuer = new URL(server.origin);
    const response = await discoveryRequest(issuer, {
      [customFetch]: fetcher,
      [allowInsecureRequests]: true,
    });
    const metadata = await processDiscoveryResponse(issuer, response);
    assert.equal(metadata.token_endpoint, `${server.origin}/token`);
  });
});
