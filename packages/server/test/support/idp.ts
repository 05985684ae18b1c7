/**
 * `oidc-provider` 9 as the external identity provider of the sign-in tests (issue 4): a stand-in for
 * Auth0 / Okta on 127.0.0.1, reached by fedhir only because the tests start it with
 * `ALLOW_PRIVATE_IDP_URLS: '127.0.0.1'`.
 *
 * - clients for each token-endpoint authentication method (`client_secret_basic`,
 *   `client_secret_post`) and one that *requires* PKCE (protocol.md §3.1 "IdPs that require PKCE
 *   need §3.2"), all with `redirect_uris` = fedhir's `<base>auth/external`;
 * - accounts whose claims the test chooses (`sub` = the account id), released per scope (`email`,
 *   `profile`); ID tokens hold only `sub` (oidc-provider's `conformIdTokenClaims`, OIDC Core §5.4),
 *   so fedhir reads e-mail and names from userinfo, as with a conforming provider;
 * - the development interactions (login form at `/interaction/:uid`), with consent granted
 *   automatically, driven by {@link signInAtIdp} with plain `fetch` and a {@link CookieJar}.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

/** Claims of one account at the provider; `sub` is the account id. Any JSON type (RP-42). */
export type IdpAccountClaims = Record<string, unknown>;

export interface IdpClient {
  clientId: string;
  clientSecret: string;
  tokenAuthMethod: 'client_secret_basic' | 'client_secret_post';
}

export interface IdpCounts {
  authorize: number;
  token: number;
  userinfo: number;
  jwks: number;
  discovery: number;
}

export interface TestIdp {
  issuer: string;
  authorizeUrl: string;
  tokenUrl: string;
  userInfoUrl: string;
  jwksUrl: string;
  /** Authenticates at the token endpoint with HTTP Basic. */
  basicClient: IdpClient;
  /** Authenticates at the token endpoint with credentials in the form body. */
  postClient: IdpClient;
  /** `client_secret_basic`, and the provider refuses its authorization requests without S256 PKCE. */
  pkceClient: IdpClient;
  counts: IdpCounts;
  /** Adds or replaces an account; answers its id (`sub`). */
  setAccount(sub: string, claims: IdpAccountClaims): string;
  /** A fresh account with a random `sub`, verified e-mail and names unless overridden. */
  account(email: string | undefined, extra?: IdpAccountClaims): string;
  close(): Promise<void>;
}

const COOKIE_KEY = 'test-idp-cookie-key-not-a-secret-0123456789';

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * Starts oidc-provider on 127.0.0.1 with issuer `http://127.0.0.1:<port>`; `redirectUris` are the
 * fedhir callbacks its clients may redirect to (normally `[<fedhir base>auth/external]`).
 */
export async function startIdp(options: { redirectUris: string[] }): Promise<TestIdp> {
  const rs = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const rsJwk: JWK = { ...(await exportJWK(rs.privateKey)), kid: 'idp-rs256', alg: 'RS256', use: 'sig' };
  const accounts = new Map<string, IdpAccountClaims>();
  const counts: IdpCounts = { authorize: 0, token: 0, userinfo: 0, jwks: 0, discovery: 0 };
  const secret = () => `${randomBytes(24).toString('base64url')}:%+~`;
  const basicClient: IdpClient = {
    clientId: 'fedhir-basic',
    clientSecret: secret(),
    tokenAuthMethod: 'client_secret_basic',
  };
  const postClient: IdpClient = {
    clientId: 'fedhir-post',
    clientSecret: secret(),
    tokenAuthMethod: 'client_secret_post',
  };
  const pkceClient: IdpClient = {
    clientId: 'fedhir-pkce',
    clientSecret: secret(),
    tokenAuthMethod: 'client_secret_basic',
  };
  const metadata = (c: IdpClient) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    token_endpoint_auth_method: c.tokenAuthMethod,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: options.redirectUris,
  });

  const server = createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [metadata(basicClient), metadata(postClient), metadata(pkceClient)],
    jwks: { keys: [rsJwk] },
    cookies: { keys: [COOKIE_KEY] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['given_name', 'family_name'],
    },
    // S256 is checked whenever a challenge is sent; the PKCE client must send one (RFC 7636 §4.4.1).
    pkce: {
      required: (_ctx: unknown, client: { clientId: string }) => client.clientId === pkceClient.clientId,
    },
    async findAccount(_ctx: unknown, id: string) {
      const claims = accounts.get(id);
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
    },
    // Consent is not what these tests are about: every requested OIDC scope is granted at once.
    async loadExistingGrant(ctx: GrantContext) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
      const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      const grant =
        existing ??
        new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
      grant.addOIDCScope(oidc.params.scope ?? 'openid');
      await grant.save();
      return grant;
    },
    features: { devInteractions: { enabled: true } },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 120,
      Grant: 600,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
    },
  });
  provider.on('server_error', (_ctx, err) =>
    process.stderr.write(`test-idp server_error: ${err instanceof Error ? err.stack : String(err)}\n`),
  );
  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path === '/auth') counts.authorize++;
    else if (path === '/token') counts.token++;
    else if (path === '/me') counts.userinfo++;
    else if (path === '/jwks') counts.jwks++;
    else if (path === '/.well-known/openid-configuration') counts.discovery++;
    callback(req, res);
  });

  return {
    issuer,
    authorizeUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    userInfoUrl: `${issuer}/me`,
    jwksUrl: `${issuer}/jwks`,
    basicClient,
    postClient,
    pkceClient,
    counts,
    setAccount(sub, claims) {
      accounts.set(sub, claims);
      return sub;
    },
    account(email, extra = {}) {
      const sub = `idp-${randomBytes(6).toString('hex')}`;
      accounts.set(sub, {
        ...(email === undefined ? {} : { email, email_verified: true }),
        given_name: 'Ida',
        family_name: 'External',
        ...extra,
      });
      return sub;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The part of oidc-provider's context that `loadExistingGrant` uses. */
interface GrantContext {
  oidc: {
    provider: {
      Grant: {
        new (init: { accountId: string; clientId: string }): IdpGrant;
        find(id: string): Promise<IdpGrant | undefined>;
      };
    };
    client: { clientId: string };
    session: { accountId: string; grantIdFor(clientId: string): string | undefined };
    params: { scope?: string };
    result?: { consent?: { grantId?: string } };
  };
}

interface IdpGrant {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}

/**
 * A browser's cookie store, reduced to what these flows need: cookies by origin (scheme, host and
 * port — stricter than a browser, which shares cookies across ports, so the IdP's and fedhir's
 * cookies never mix) and path prefix; `Max-Age=0` deletes.
 */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; path: string }>();

  /** Stores the `Set-Cookie` headers of a response to a request for `url`. */
  store(url: string | URL, headers: Headers): void {
    const origin = new URL(url).origin;
    for (const line of headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const attribute of attributes) {
        const [key = '', v = ''] = attribute.split('=');
        if (key.toLowerCase() === 'path' && v.startsWith('/')) path = v;
        if (key.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (key.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const key = `${origin} ${path} ${name}`;
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { value, path });
    }
  }

  /** The `Cookie` header a browser would send with a request for `url`, or undefined. */
  header(url: string | URL): string | undefined {
    const { origin, pathname } = new URL(url);
    const pairs: string[] = [];
    for (const [key, cookie] of this.cookies) {
      const [cookieOrigin, , name] = key.split(' ');
      if (cookieOrigin !== origin) continue;
      const prefix = cookie.path.endsWith('/') ? cookie.path : `${cookie.path}/`;
      if (pathname !== cookie.path && !pathname.startsWith(prefix)) continue;
      pairs.push(`${name}=${cookie.value}`);
    }
    return pairs.length > 0 ? pairs.join('; ') : undefined;
  }

  /** A request as the browser makes it: the jar's cookies sent, the answer's stored, no redirect followed. */
  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.header(url);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.store(url, response.headers);
    return response;
  }
}

function formOf(
  html: string,
  pageUrl: string,
): { action: string; fields: Record<string, string> } | undefined {
  const form = /<form[^>]*action="([^"]*)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const fields: Record<string, string> = {};
  for (const input of (form[2] ?? '').matchAll(
    /<input type="hidden" name="([^"]*)" value="([^"]*)"\s*\/?>/g,
  )) {
    fields[input[1] ?? ''] = input[2] ?? '';
  }
  return { action: new URL((form[1] ?? '').replace(/&amp;/g, '&'), pageUrl).href, fields };
}

/**
 * Signs `accountId` in at the provider the way a browser would: GET the authorization URL, follow the
 * provider's own redirects, fill its login form (any password) and submit its consent form if one
 * is shown. Answers the redirect that leaves the provider (normally fedhir's `/auth/external?…`)
 * without following it: the test calls fedhir itself, with fedhir's cookie jar.
 */
export async function signInAtIdp(authorizeUrl: string, accountId: string, jar: CookieJar): Promise<URL> {
  const idpOrigin = new URL(authorizeUrl).origin;
  let url = authorizeUrl;
  let response = await jar.fetch(url);
  for (let step = 0; step < 12; step++) {
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, url);
      if (next.origin !== idpOrigin) return next;
      url = next.href;
      response = await jar.fetch(url);
      continue;
    }
    const html = await response.text();
    const form = response.status === 200 ? formOf(html, url) : undefined;
    if (!form)
      throw new Error(
        `identity provider answered ${response.status} at ${url}: ${html
          .replace(/<style[\s\S]*?<\/style>/, '')
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 500)}`,
      );
    const body = new URLSearchParams(form.fields);
    if (form.fields.prompt === 'login' || html.includes('name="login"')) {
      body.set('prompt', 'login');
      body.set('login', accountId);
      body.set('password', 'any password');
    }
    url = form.action;
    response = await jar.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
    });
  }
  throw new Error('identity provider sign-in did not finish');
}
