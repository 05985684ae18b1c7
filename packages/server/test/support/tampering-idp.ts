/**
 * A deliberately misbehaving OpenID provider for the RP-* cases (security-cases §1): node:http + jose
 * on 127.0.0.1, doing on demand what a conforming provider (oidc-provider, test/support/idp.ts)
 * never does — ID tokens with a bad signature, a wrong `aud`/`iss`/`nonce`, expired, `alg: none`, HS256
 * keyed with its own RSA public key; userinfo with another `sub` or as an unsigned JWT; HTML, arrays,
 * 20 MB, gzip bombs, hangs and redirects from the token endpoint.
 *
 * Faults are chosen per authorization code: {@link TamperingIdp.code} (the §3.1 flow, where the test
 * builds the callback itself) or {@link TamperingIdp.authorize} (the §3.2 flow: the provider records
 * fedhir's `nonce` and PKCE challenge, as a real one does, and checks the verifier at its token
 * endpoint). So tests can run side by side without sharing a "next answer".
 *
 * Every request is logged and counted per endpoint, so a test can assert "the token, userinfo or JWKS
 * endpoint was not hit". The server only answers: it never makes a request, and the only foreign URLs
 * it hands out (redirects, `jku`) are the ones a test passes in, which must be loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  CompactEncrypt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type KeyObject,
  SignJWT,
} from 'jose';

export type Claims = Record<string, unknown>;

/** How an ID token (or a JWT userinfo answer) is signed. */
export type SignMode =
  /** RS256 with the published key {@link TamperingIdp.kid} (or `key`'s). */
  | 'good'
  /** RS256 with the published key, then one signature byte flipped. */
  | 'bad-signature'
  /** RS256 with a key that is not in the JWKS (and its `kid` unless the header says otherwise). */
  | 'attacker-key'
  /** `alg: none`, empty signature. */
  | 'none'
  /** HS256 keyed with the provider's RSA public key as PEM text (CVE-2022-23541). */
  | 'hs256-pem'
  /** HS256 keyed with the provider's RSA public JWK as JSON text. */
  | 'hs256-jwk'
  /** A valid ES256 signature with a published EC key (alg not configured: RS256 expected). */
  | 'es256'
  /** A valid RS384 signature with the published RSA key (alg not configured). */
  | 'rs384'
  /** A JWE (RSA-OAEP-256 / A256GCM) to the provider's own key: encrypted ID tokens are not configured. */
  | 'jwe';

export interface IdTokenSpec {
  /** Merged over the defaults (iss, sub, aud, exp, iat, nonce, the account's claims); `undefined` removes. */
  claims?: Claims;
  /** Merged over `{ alg, kid, typ: 'JWT' }`; `undefined` removes (e.g. `{ kid: undefined }`). */
  header?: Record<string, unknown>;
  sign?: SignMode;
  /** Which published RSA key signs ('k1' by default; 'k2' after a rotation). */
  key?: 'k1' | 'k2';
  /** Put the account's claims other than `sub` in the ID token (default true). */
  withAccountClaims?: boolean;
  /** Flip one signature byte after signing (a bad signature for any algorithm). */
  flip?: boolean;
}

export type BodyFault =
  | { kind: 'status'; status: number; body: string; contentType?: string }
  | { kind: 'body'; body: string | Buffer; contentType: string }
  | { kind: 'json'; value: unknown }
  | { kind: 'hang' }
  /** Headers at once, then one byte per second, never finishing. */
  | { kind: 'drip' }
  | { kind: 'large'; bytes: number }
  | { kind: 'gzip-bomb'; bytes: number }
  | { kind: 'redirect'; location: string };

export interface Scenario {
  /** Merged over the default account (a random `sub`, a verified e-mail, names). */
  account?: Claims;
  /** The ID token; `'omit'` leaves it out of the token response; `{ raw }` sends that text. */
  idToken?: IdTokenSpec | 'omit' | { raw: string };
  /** The whole token response instead of the normal one. */
  token?: BodyFault;
  /** Extra fields merged into the normal token response (`token_type`, …). */
  tokenFields?: Claims;
  /** Userinfo: claims merged over the account, or a whole fault, or a JWT answer. */
  userinfo?: { claims?: Claims; fault?: BodyFault; jwt?: SignMode };
  /** The ID token replayed from an earlier code's token response (RP-35). */
  replayIdTokenOf?: string;
  /** Redeem the code without checking PKCE (a provider that does not enforce it, RP-10). */
  ignorePkce?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface Counts {
  discovery: number;
  authorize: number;
  token: number;
  userinfo: number;
  jwks: number;
  /** The JWKS a `jku` header would point at: must never be fetched (RP-24). */
  attackerJwks: number;
}

interface CodeRecord {
  scenario: Scenario;
  account: Claims;
  clientId: string;
  redirectUri: string | undefined;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  used: boolean;
  idToken?: string;
}

export interface TamperingIdp {
  issuer: string;
  origin: string;
  authorizeUrl: string;
  tokenUrl: string;
  userInfoUrl: string;
  jwksUrl: string;
  /** A JWKS URL on this server holding the attacker's key (for `jku` headers). */
  attackerJwksUrl: string;
  /** The attacker's public key (for embedded `jwk` headers). */
  attackerPublicJwk: JWK;
  clientId: string;
  clientSecret: string;
  counts: Counts;
  requests: RecordedRequest[];
  /** The discovery document's fields (mutable: the next discovery answers the change). */
  metadata: Claims;
  /** Which RSA keys the JWKS publishes (mutable; default `['k1']`), plus extra raw entries. */
  jwks: { rsa: Array<'k1' | 'k2'>; ec: boolean; extra: unknown[] };
  /** A code for the §3.1 flow (no nonce, no PKCE), with its fault. */
  code(scenario?: Scenario): string;
  /**
   * The provider's front channel for the §3.2 flow: reads fedhir's authorization request (client,
   * redirect_uri, state, nonce, S256 challenge), issues a code carrying `scenario`, and answers the
   * redirect back to fedhir (`code`, `state`, `iss`) without following it.
   */
  authorize(authorizationUrl: string | URL, scenario?: Scenario): Promise<URL>;
  /** The token response an earlier code received (to replay its ID token). */
  idTokenOf(code: string): string | undefined;
  /** Signs a JWT the way {@link SignMode} says (for hand-made tokens). */
  sign(payload: Claims, mode?: SignMode, header?: Record<string, unknown>): Promise<string>;
  /** Requests received at one path. */
  hits(path: string): RecordedRequest[];
  resetCounts(): void;
  close(): Promise<void>;
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Merges `patch` over `base`; a key whose value is `undefined` is removed. */
function merge(base: Claims, patch: Claims | undefined): Claims {
  const out: Claims = { ...base };
  for (const [k, v] of Object.entries(patch ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The same JWS with the first signature byte inverted. */
function flipSignature(jwt: string): string {
  const [h, p, s = ''] = jwt.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[0] = (sig[0] ?? 0) ^ 0xff;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Sends one {@link BodyFault}. */
function sendFault(res: ServerResponse, fault: BodyFault, timers: Set<NodeJS.Timeout>): void {
  switch (fault.kind) {
    case 'status':
      res.writeHead(fault.status, { 'content-type': fault.contentType ?? 'application/json' });
      res.end(fault.body);
      return;
    case 'body':
      res.writeHead(200, { 'content-type': fault.contentType });
      res.end(fault.body);
      return;
    case 'json':
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(fault.value));
      return;
    case 'hang':
      return;
    case 'drip': {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
      const timer = setInterval(() => res.write(' '), 1000);
      timers.add(timer);
      res.on('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
      return;
    }
    case 'large': {
      const chunk = Buffer.alloc(64 * 1024, ' ');
      res.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      let closed = false;
      res.on('close', () => {
        closed = true;
      });
      const pump = () => {
        while (!closed && sent < fault.bytes) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        if (!closed) res.end();
      };
      pump();
      return;
    }
    case 'gzip-bomb':
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(Buffer.alloc(fault.bytes, ' ')));
      return;
    case 'redirect':
      res.writeHead(302, { location: fault.location });
      res.end();
      return;
  }
}

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
let keys: Promise<{ k1: KeyPair; k2: KeyPair; attacker: KeyPair; ec: KeyPair }> | undefined;

/**
 * The providers' keys, generated once per process: RSA generation is slow, and the cases never
 * depend on two providers holding different keys (issuers and key caches differ; a token of one
 * provider presented as another's fails on `iss`).
 */
function keyMaterial() {
  keys ??= (async () => ({
    k1: await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 }),
    k2: await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 }),
    attacker: await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 }),
    ec: await generateKeyPair('ES256', { extractable: true }),
  }))();
  return keys;
}

/**
 * Starts a tampering provider on 127.0.0.1 (port 0), issuer `http://127.0.0.1:<port>`.
 * `clientSecret` may hold `:` `%` `+` `é` (RP-15); `metadata` patches the discovery document.
 */
export async function startTamperingIdp(
  options: { clientId?: string; clientSecret?: string; metadata?: Claims } = {},
): Promise<TamperingIdp> {
  const clientId = options.clientId ?? 'fedhir-rp';
  const clientSecret = options.clientSecret ?? `s3cret:%+é-${randomBytes(12).toString('base64url')}`;
  const { k1, k2, attacker, ec } = await keyMaterial();
  const publicJwk = async (key: KeyObject | CryptoKey, kid: string, alg: string): Promise<JWK> => ({
    ...(await exportJWK(key)),
    kid,
    alg,
    use: 'sig',
  });
  const k1Jwk = await publicJwk(k1.publicKey, 'k1', 'RS256');
  const k2Jwk = await publicJwk(k2.publicKey, 'k2', 'RS256');
  const ecJwk = await publicJwk(ec.publicKey, 'ec1', 'ES256');
  const attackerJwk = await publicJwk(attacker.publicKey, 'attacker', 'RS256');
  const k1Pem = await exportSPKI(k1.publicKey);

  const codes = new Map<string, CodeRecord>();
  const accessTokens = new Map<string, CodeRecord>();
  const requests: RecordedRequest[] = [];
  const counts: Counts = { discovery: 0, authorize: 0, token: 0, userinfo: 0, jwks: 0, attackerJwks: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const jwks: TamperingIdp['jwks'] = { rsa: ['k1'], ec: false, extra: [] };

  const server = createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server, '127.0.0.1');
  const origin = `http://127.0.0.1:${port}`;
  const issuer = origin;
  const metadata: Claims = {
    issuer,
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    userinfo_endpoint: `${origin}/userinfo`,
    jwks_uri: `${origin}/jwks`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    authorization_response_iss_parameter_supported: true,
    ...options.metadata,
  };

  async function sign(payload: Claims, mode: SignMode = 'good', header: Record<string, unknown> = {}) {
    const key = header.kid === 'k2' ? k2 : k1;
    const baseHeader = (alg: string, kid: string | undefined) =>
      merge({ alg, ...(kid ? { kid } : {}), typ: 'JWT' }, header) as { alg: string };
    switch (mode) {
      case 'good':
        return new SignJWT(payload).setProtectedHeader(baseHeader('RS256', 'k1')).sign(key.privateKey);
      case 'bad-signature':
        return flipSignature(
          await new SignJWT(payload).setProtectedHeader(baseHeader('RS256', 'k1')).sign(key.privateKey),
        );
      case 'attacker-key':
        return new SignJWT(payload)
          .setProtectedHeader(baseHeader('RS256', 'attacker'))
          .sign(attacker.privateKey);
      case 'none':
        return `${b64(merge({ alg: 'none', typ: 'JWT' }, header))}.${b64(payload)}.`;
      case 'hs256-pem':
        return new SignJWT(payload)
          .setProtectedHeader(baseHeader('HS256', 'k1'))
          .sign(new TextEncoder().encode(k1Pem));
      case 'hs256-jwk':
        return new SignJWT(payload)
          .setProtectedHeader(baseHeader('HS256', 'k1'))
          .sign(new TextEncoder().encode(JSON.stringify(k1Jwk)));
      case 'es256':
        return new SignJWT(payload).setProtectedHeader(baseHeader('ES256', 'ec1')).sign(ec.privateKey);
      case 'rs384':
        return new SignJWT(payload).setProtectedHeader(baseHeader('RS384', 'k1')).sign(k1.privateKey);
      case 'jwe': {
        const inner = await new SignJWT(payload)
          .setProtectedHeader(baseHeader('RS256', 'k1'))
          .sign(k1.privateKey);
        return new CompactEncrypt(new TextEncoder().encode(inner))
          .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'JWT' })
          .encrypt(k1.publicKey);
      }
    }
  }

  function newCode(record: Omit<CodeRecord, 'used'>): string {
    const code = `code-${randomBytes(16).toString('base64url')}`;
    codes.set(code, { ...record, used: false });
    return code;
  }

  function accountFor(scenario: Scenario): Claims {
    return merge(
      {
        sub: `sub-${randomBytes(6).toString('hex')}`,
        email: `user-${randomBytes(4).toString('hex')}@example.com`,
        email_verified: true,
        given_name: 'Tess',
        family_name: 'Tamper',
      },
      scenario.account,
    );
  }

  async function idTokenFor(record: CodeRecord): Promise<string | undefined> {
    const { scenario } = record;
    if (scenario.replayIdTokenOf) return codes.get(scenario.replayIdTokenOf)?.idToken;
    const spec = scenario.idToken;
    if (spec === 'omit') return undefined;
    if (spec && 'raw' in spec) return spec.raw;
    const now = Math.floor(Date.now() / 1000);
    const { sub, ...rest } = record.account;
    const claims = merge(
      {
        iss: issuer,
        sub,
        aud: record.clientId,
        exp: now + 300,
        iat: now,
        ...(record.nonce !== undefined ? { nonce: record.nonce } : {}),
        ...(spec?.withAccountClaims === false ? {} : rest),
      },
      spec?.claims,
    );
    const header = { ...(spec?.key === 'k2' ? { kid: 'k2' } : {}), ...spec?.header };
    const jwt = await sign(claims, spec?.sign ?? 'good', header);
    return spec?.flip ? flipSignature(jwt) : jwt;
  }

  /** RFC 6749 §2.3.1: form-urlencoded id and secret, then Basic. */
  function clientAuthOk(req: IncomingMessage, form: URLSearchParams): boolean {
    const auth = req.headers.authorization;
    const decode = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
    if (auth?.startsWith('Basic ')) {
      if (form.has('client_secret')) return false;
      const [id = '', secret = ''] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      try {
        return decode(id) === clientId && decode(secret) === clientSecret;
      } catch {
        return false;
      }
    }
    return form.get('client_id') === clientId && form.get('client_secret') === clientSecret;
  }

  async function token(req: IncomingMessage, res: ServerResponse, body: string) {
    const form = new URLSearchParams(body);
    const record = codes.get(form.get('code') ?? '');
    const fail = (status: number, error: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ error, error_description: `upstream says ${error} <b>marker-${port}</b>` }));
    };
    if (record?.scenario.token) return sendFault(res, record.scenario.token, timers);
    if (!clientAuthOk(req, form)) return fail(401, 'invalid_client');
    if (form.get('grant_type') !== 'authorization_code') return fail(400, 'unsupported_grant_type');
    if (!record || record.used) return fail(400, 'invalid_grant');
    record.used = true;
    if (record.redirectUri !== undefined && form.get('redirect_uri') !== record.redirectUri) {
      return fail(400, 'invalid_grant');
    }
    // RFC 7636 §4.6: the verifier must hash to the challenge the authorization request carried.
    const verifier = form.get('code_verifier');
    if (record.scenario.ignorePkce) {
      // A provider that does not enforce PKCE: only the nonce can catch an injected code.
    } else if (record.codeChallenge !== undefined) {
      const hashed = verifier ? createHash('sha256').update(verifier).digest('base64url') : undefined;
      if (record.codeChallengeMethod !== 'S256' || hashed !== record.codeChallenge) {
        return fail(400, 'invalid_grant');
      }
    } else if (verifier) {
      return fail(400, 'invalid_grant');
    }
    const accessToken = `at-${randomBytes(16).toString('base64url')}`;
    accessTokens.set(accessToken, record);
    const idToken = await idTokenFor(record);
    record.idToken = idToken;
    const response = merge(
      {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'openid email profile',
        ...(idToken !== undefined ? { id_token: idToken } : {}),
      },
      record.scenario.tokenFields,
    );
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(response));
  }

  async function userinfo(req: IncomingMessage, res: ServerResponse) {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const record = bearer ? accessTokens.get(bearer) : undefined;
    if (!record) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end();
      return;
    }
    const spec = record.scenario.userinfo;
    if (spec?.fault) return sendFault(res, spec.fault, timers);
    const claims = merge(record.account, spec?.claims);
    if (spec?.jwt) {
      const jwt = await sign({ ...claims, iss: issuer, aud: record.clientId }, spec.jwt);
      res.writeHead(200, { 'content-type': 'application/jwt' });
      res.end(jwt);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(claims));
  }

  function authorizeEndpoint(res: ServerResponse, query: URLSearchParams, scenario: Scenario) {
    const redirectUri = query.get('redirect_uri');
    if (query.get('client_id') !== clientId || !redirectUri || query.get('response_type') !== 'code') {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad authorization request');
      return;
    }
    const code = newCode({
      scenario,
      account: accountFor(scenario),
      clientId,
      redirectUri,
      nonce: query.get('nonce') ?? undefined,
      codeChallenge: query.get('code_challenge') ?? undefined,
      codeChallengeMethod: query.get('code_challenge_method') ?? undefined,
    });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    const state = query.get('state');
    if (state !== null) back.searchParams.set('state', state);
    back.searchParams.set('iss', issuer);
    res.writeHead(302, { location: back.href });
    res.end();
  }

  const pendingScenarios = new Map<string, Scenario>();

  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const url = new URL(req.url ?? '/', origin);
      const body = await readBody(req);
      requests.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
      });
      switch (url.pathname) {
        case '/.well-known/openid-configuration':
          counts.discovery++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(metadata));
          return;
        case '/jwks': {
          counts.jwks++;
          const keys: unknown[] = [
            ...jwks.rsa.map((k) => (k === 'k1' ? k1Jwk : k2Jwk)),
            ...(jwks.ec ? [ecJwk] : []),
            ...jwks.extra,
          ];
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ keys }));
          return;
        }
        case '/attacker-jwks':
          counts.attackerJwks++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ keys: [attackerJwk] }));
          return;
        case '/authorize': {
          counts.authorize++;
          const id = req.headers['x-test-scenario'];
          const scenario = (typeof id === 'string' ? pendingScenarios.get(id) : undefined) ?? {};
          if (typeof id === 'string') pendingScenarios.delete(id);
          authorizeEndpoint(res, url.searchParams, scenario);
          return;
        }
        case '/token':
          counts.token++;
          await token(req, res, body);
          return;
        case '/userinfo':
          counts.userinfo++;
          await userinfo(req, res);
          return;
        default:
          res.writeHead(404).end();
      }
    } catch (err) {
      process.stderr.write(`tampering-idp: ${err instanceof Error ? err.stack : String(err)}\n`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });

  return {
    issuer,
    origin,
    authorizeUrl: `${origin}/authorize`,
    tokenUrl: `${origin}/token`,
    userInfoUrl: `${origin}/userinfo`,
    jwksUrl: `${origin}/jwks`,
    attackerJwksUrl: `${origin}/attacker-jwks`,
    attackerPublicJwk: attackerJwk,
    clientId,
    clientSecret,
    counts,
    requests,
    metadata,
    jwks,
    code(scenario = {}) {
      return newCode({
        scenario,
        account: accountFor(scenario),
        clientId,
        redirectUri: undefined,
        nonce: undefined,
        codeChallenge: undefined,
        codeChallengeMethod: undefined,
      });
    },
    async authorize(authorizationUrl, scenario = {}) {
      const url = new URL(authorizationUrl);
      if (url.origin !== origin) throw new Error(`not this provider's URL: ${url.origin}`);
      const id = randomBytes(8).toString('hex');
      pendingScenarios.set(id, scenario);
      const response = await fetch(url, { redirect: 'manual', headers: { 'x-test-scenario': id } });
      const location = response.headers.get('location');
      if (response.status !== 302 || !location) {
        throw new Error(`authorize answered ${response.status}: ${await response.text()}`);
      }
      return new URL(location);
    },
    idTokenOf(code) {
      return codes.get(code)?.idToken;
    },
    sign,
    hits(path) {
      return requests.filter((r) => r.path === path);
    },
    resetCounts() {
      for (const key of Object.keys(counts) as Array<keyof Counts>) counts[key] = 0;
      requests.length = 0;
    },
    close() {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A server that must never be reached (127.0.0.2 or [::1], outside the allow list): it counts
 * connections, so a test proves the guard refused before connecting (RP-49, RP-51).
 */
export interface Canary {
  origin: string;
  connections: number;
  close(): Promise<void>;
}

export async function startCanary(host: '127.0.0.2' | '::1'): Promise<Canary> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"canary":"internal-service-body"}');
  });
  const state = { connections: 0 };
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server, host);
  return {
    origin: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    get connections() {
      return state.connections;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
