/**
 * Real peers for the token-exchange tests (issue 5), all on 127.0.0.1:
 *
 * - {@link startExchangeIdp}: `oidc-provider` 9 as the external identity provider. Tokens are minted
 *   through its own models (no browser): an opaque access token valid at its userinfo endpoint
 *   (`/me`), a JWT access token for a resource server (`accessTokenFormat: 'jwt'`, our configured
 *   `audience`) for the `jwks` path, an opaque token with an audience for the `introspection` path,
 *   refresh and ID tokens. Every request is counted per endpoint, so tests can assert how often
 *   fedhir called the provider.
 * - {@link startFaultIdp}: a tiny node:http server standing in for a userinfo endpoint that
 *   misbehaves: each registered token selects one answer (401, 429 with Retry-After, 5xx, a hang,
 *   HTML, odd JSON, 10 MB, a redirect to 127.0.0.2, an unsigned `application/jwt`, …).
 *
 * fedhir reaches both only because tests start it with `ALLOW_PRIVATE_IDP_URLS: '127.0.0.1'`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import Provider from 'oidc-provider';

/** The provider-side client that fedhir's identity provider configuration names (`clientId`). */
export const EXT_CLIENT_ID = 'fedhir-ext';
export const EXT_CLIENT_SECRET = 'fedhir-ext-secret-0123456789-abcdefghij';
/** Another app registered at the same provider tenant (TX-26). */
export const OTHER_CLIENT_ID = 'other-app';
const OTHER_CLIENT_SECRET = 'other-app-secret-0123456789-abcdefghijk';
/** The audience (resource indicator) under which the provider issues access tokens for our API. */
export const API_AUDIENCE = 'urn:fedhir:test-api';
/** An audience of another API at the same provider. */
export const OTHER_AUDIENCE = 'urn:other:api';

/** Claims an account answers; `sub` is the account id. Values may have any type (TX-20, TX-21). */
export type AccountClaims = Record<string, unknown>;

export interface IdpCounts {
  /** GET/POST /me (userinfo). */
  userinfo: number;
  /** GET /jwks. */
  jwks: number;
  /** POST /token/introspection. */
  introspection: number;
  /** GET /.well-known/openid-configuration. */
  discovery: number;
}

export interface ExchangeIdp {
  issuer: string;
  userinfoUrl: string;
  jwksUrl: string;
  introspectionUrl: string;
  counts: IdpCounts;
  /** The provider's public signing keys (as its JWKS publishes them). */
  publicKeys: JWK[];
  /** Adds or replaces an account; answers its id (`sub`). */
  setAccount(sub: string, claims: AccountClaims): string;
  /** A verified-email account with a fresh random `sub`. */
  account(email: string, extra?: AccountClaims): string;
  /** An opaque access token without audience: valid at userinfo (scope `openid email profile` by default). */
  accessToken(sub: string, options?: { scope?: string; clientId?: string }): Promise<string>;
  /** An RFC 9068 JWT access token for a resource server (default: our {@link API_AUDIENCE}), ES256. */
  jwtAccessToken(sub: string, options?: { audience?: string; clientId?: string }): Promise<string>;
  /** An opaque access token bound to a resource server's audience (introspection path). */
  opaqueResourceToken(
    sub: string,
    options?: { audience?: string; clientId?: string; expiresIn?: number },
  ): Promise<string>;
  refreshToken(sub: string): Promise<string>;
  /** An ID token for `clientId` (default {@link EXT_CLIENT_ID}) with a nonce, RS256. */
  idToken(sub: string, options?: { clientId?: string; nonce?: string }): Promise<string>;
  /** Signs any payload with the provider's own ES256 key (faults: expired, wrong iss, …). */
  sign(payload: JWTPayload, header?: { alg?: string; typ?: string }): Promise<string>;
  /** Revokes (destroys) an access token at the provider. */
  revoke(token: string): Promise<void>;
  close(): Promise<void>;
}

function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return sockets;
}

function clientMetadata(clientId: string, secret: string) {
  return {
    client_id: clientId,
    client_secret: secret,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/cb'],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

/** oidc-provider 9 on 127.0.0.1:<port 0>, its issuer `http://127.0.0.1:<port>`. */
export async function startExchangeIdp(): Promise<ExchangeIdp> {
  const es = await generateKeyPair('ES256', { extractable: true });
  const rs = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const esJwk: JWK = { ...(await exportJWK(es.privateKey)), kid: 'es256-1', alg: 'ES256', use: 'sig' };
  const rsJwk: JWK = { ...(await exportJWK(rs.privateKey)), kid: 'rs256-1', alg: 'RS256', use: 'sig' };
  const accounts = new Map<string, AccountClaims>();
  const counts: IdpCounts = { userinfo: 0, jwks: 0, introspection: 0, discovery: 0 };

  const server = createServer();
  const sockets = trackSockets(server);
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const resourceServer = (audience: string) => ({
    audience,
    scope: 'api',
    accessTokenTTL: 3600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  });

  const provider = new Provider(issuer, {
    clients: [
      clientMetadata(EXT_CLIENT_ID, EXT_CLIENT_SECRET),
      clientMetadata(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET),
    ],
    jwks: { keys: [esJwk, rsJwk] },
    cookies: { keys: ['exchange-idp-cookie-key-not-secret-0123456789'] },
    ttl: {
      AccessToken: 3600,
      Grant: 3600,
      IdToken: 3600,
      RefreshToken: 86400,
      Interaction: 600,
      Session: 3600,
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name'],
    },
    async findAccount(_ctx: unknown, id: string) {
      const claims = accounts.get(id);
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
    },
    // Access tokens for an API (they carry an audience) hold the identity claims, as Auth0/Okta
    // custom claims do: the jwks and introspection paths need the e-mail without a userinfo call.
    async extraTokenClaims(_ctx: unknown, token: { aud?: unknown; accountId?: string }) {
      if (token.aud === undefined || !token.accountId) return undefined;
      const claims = accounts.get(token.accountId);
      if (!claims) return undefined;
      const { sub: _sub, ...rest } = claims;
      return rest;
    },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        allowedPolicy: async () => true,
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx: unknown, resource: string) => resourceServer(resource),
      },
    },
  });
  provider.on('server_error', (_ctx, err) =>
    process.stderr.write(`exchange-idp server_error: ${err instanceof Error ? err.stack : String(err)}\n`),
  );
  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path === '/me') counts.userinfo++;
    else if (path === '/jwks') counts.jwks++;
    else if (path === '/token/introspection') counts.introspection++;
    else if (path === '/.well-known/openid-configuration') counts.discovery++;
    callback(req, res);
  });

  async function client(id: string) {
    const found = await provider.Client.find(id);
    if (!found) throw new Error(`no client ${id}`);
    return found;
  }

  async function grant(sub: string, clientId: string, scope: string, resource?: string) {
    const g = new provider.Grant({ accountId: sub, clientId });
    g.addOIDCScope(scope);
    if (resource) g.addResourceScope(resource, 'api');
    return g.save();
  }

  async function resourceToken(
    sub: string,
    audience: string,
    clientId: string,
    format: 'jwt' | 'opaque',
    expiresIn?: number,
  ) {
    const grantId = await grant(sub, clientId, 'openid', audience);
    return new provider.AccessToken({
      accountId: sub,
      client: await client(clientId),
      grantId,
      scope: 'api',
      ...(expiresIn ? { expiresIn } : {}),
      resourceServer: new provider.ResourceServer(audience, {
        ...resourceServer(audience),
        accessTokenFormat: format,
      }),
    }).save();
  }

  return {
    issuer,
    userinfoUrl: `${issuer}/me`,
    jwksUrl: `${issuer}/jwks`,
    introspectionUrl: `${issuer}/token/introspection`,
    counts,
    publicKeys: [esJwk, rsJwk].map(({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub }) => pub),
    setAccount(sub, claims) {
      accounts.set(sub, claims);
      return sub;
    },
    account(email, extra = {}) {
      const sub = `acct-${randomBytes(6).toString('hex')}`;
      accounts.set(sub, {
        email,
        email_verified: true,
        given_name: 'Ext',
        family_name: 'User',
        name: 'Ext User',
        ...extra,
      });
      return sub;
    },
    async accessToken(sub, options = {}) {
      const clientId = options.clientId ?? EXT_CLIENT_ID;
      const scope = options.scope ?? 'openid email profile';
      const grantId = await grant(sub, clientId, scope);
      return new provider.AccessToken({
        accountId: sub,
        client: await client(clientId),
        grantId,
        scope,
      }).save();
    },
    jwtAccessToken(sub, options = {}) {
      return resourceToken(sub, options.audience ?? API_AUDIENCE, options.clientId ?? EXT_CLIENT_ID, 'jwt');
    },
    opaqueResourceToken(sub, options = {}) {
      return resourceToken(
        sub,
        options.audience ?? API_AUDIENCE,
        options.clientId ?? EXT_CLIENT_ID,
        'opaque',
        options.expiresIn,
      );
    },
    async refreshToken(sub) {
      const grantId = await grant(sub, EXT_CLIENT_ID, 'openid offline_access');
      return new provider.RefreshToken({
        accountId: sub,
        client: await client(EXT_CLIENT_ID),
        grantId,
        scope: 'openid offline_access',
      }).save();
    },
    async idToken(sub, options = {}) {
      const claims = accounts.get(sub) ?? {};
      const token = new provider.IdToken(
        { ...claims, sub },
        { client: await client(options.clientId ?? EXT_CLIENT_ID) },
      );
      token.scope = 'openid email profile';
      token.set('nonce', options.nonce ?? randomBytes(8).toString('hex'));
      return token.issue({ use: 'idtoken' });
    },
    sign(payload, header = {}) {
      return new SignJWT(payload)
        .setProtectedHeader({ alg: header.alg ?? 'ES256', kid: esJwk.kid, typ: header.typ ?? 'at+jwt' })
        .sign(es.privateKey);
    },
    async revoke(token) {
      const found = await provider.AccessToken.find(token);
      await found?.destroy();
    },
    close: () => closeServer(server, sockets),
  };
}

/** How the fault server answers one registered token at its userinfo path. */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  | { kind: 'hang' }
  | { kind: 'body'; contentType: string; body: string | Buffer; status?: number }
  | { kind: 'json'; value: unknown }
  | { kind: 'large'; bytes: number; chunked: boolean }
  | { kind: 'gzip-bomb'; bytes: number }
  | { kind: 'redirect'; location: string };

export interface FaultIdp {
  origin: string;
  /** The userinfo URL to configure: `<origin>/userinfo`. */
  userinfoUrl: string;
  /** Requests received at `/userinfo` and at {@link FaultIdp.route} URLs. */
  calls: number;
  /** Registers one behaviour and answers a fresh token that selects it (a valid RFC 6750 b64token). */
  register(fault: Fault): string;
  /** A URL on this server that answers every request with `fault` (JWKS, introspection, discovery). */
  route(fault: Fault): string;
  /** A string in every error body the server sends, so tests can check fedhir never echoes one. */
  readonly marker: string;
  close(): Promise<void>;
}

/**
 * A misbehaving userinfo endpoint on 127.0.0.1. An unknown token answers 401. Every body it sends
 * contains {@link FaultIdp.marker}, so a test can assert fedhir never echoes an upstream body.
 */
export async function startFaultIdp(): Promise<FaultIdp> {
  const faults = new Map<string, Fault>();
  const marker = `upstream-marker-${randomBytes(6).toString('hex')}`;
  const state = { calls: 0 };
  const routes = new Map<string, Fault>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const routed = routes.get(url.pathname);
    if (url.pathname !== '/userinfo' && !routed) {
      res.writeHead(404).end();
      return;
    }
    state.calls++;
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const fault = routed ?? faults.get(token);
    if (!fault) {
      res.writeHead(401, {
        'www-authenticate': 'Bearer error="invalid_token"',
        'content-type': 'application/json',
      });
      res.end(JSON.stringify({ error: 'invalid_token', error_description: marker }));
      return;
    }
    switch (fault.kind) {
      case 'status': {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
        res.writeHead(fault.status, headers);
        res.end(fault.body ?? JSON.stringify({ error: 'upstream', error_description: marker }));
        return;
      }
      case 'hang':
        // Never answers; the socket is destroyed when the server closes.
        return;
      case 'body':
        res.writeHead(fault.status ?? 200, { 'content-type': fault.contentType });
        res.end(fault.body);
        return;
      case 'json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(fault.value));
        return;
      case 'large': {
        const chunk = Buffer.alloc(64 * 1024, 'a');
        res.writeHead(200, {
          'content-type': 'application/json',
          ...(fault.chunked ? {} : { 'content-length': String(fault.bytes) }),
        });
        let sent = 0;
        const pump = () => {
          while (sent < fault.bytes) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        res.on('close', () => {
          sent = fault.bytes;
        });
        pump();
        return;
      }
      case 'gzip-bomb': {
        const bomb = gzipSync(Buffer.alloc(fault.bytes, '{'));
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(bomb);
        return;
      }
      case 'redirect':
        res.writeHead(302, { location: fault.location });
        res.end();
        return;
    }
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    userinfoUrl: `${origin}/userinfo`,
    get calls() {
      return state.calls;
    },
    marker,
    register(fault) {
      const token = `fault.${randomBytes(12).toString('base64url')}`;
      faults.set(token, fault);
      return token;
    },
    route(fault) {
      const path = `/r/${randomBytes(8).toString('hex')}`;
      routes.set(path, fault);
      return `${origin}${path}`;
    },
    close: () => closeServer(server, sockets),
  };
}
