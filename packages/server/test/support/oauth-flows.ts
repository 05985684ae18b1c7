/**
 * Shared OAuth flows for the OP-* / RB-* tests: every step goes over HTTP to a real listening server,
 * except where a helper says otherwise (settings that no admin API can change yet).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { digest } from '../../src/crypto/digest.ts';
import type { ClientApplication, ProjectMembership } from '../../src/model/types.ts';
import type { StoredClient } from '../../src/oauth/clients.ts';
import { basic, type ProjectFixture, postForm } from './fixtures.ts';
import { call, type TestServer } from './server.ts';

export interface Pkce {
  verifier: string;
  challenge: string;
}

/** A fresh RFC 7636 S256 pair (43-character verifier). */
export function pkcePair(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/**
 * `value` with its last character replaced by another one: a tampered secret, token or handle that
 * can never equal the original (a 32-byte base64url value ends in only A, Q, g or w, so a fixed
 * replacement would give the original back one run in four).
 */
export function withLastCharacterChanged(value: string): string {
  return `${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`;
}

export function randomState(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * Server settings for files that make many deliberate failures from one IP and one client: the
 * failure limiter (protocol.md §7.9) must not turn their expected 400/401 answers into 429. OP-31
 * tests the limiter itself with the defaults.
 */
export const NO_FAILURE_LIMITS = {
  RATE_LIMIT_FAILURES_PER_IP: '1000000',
  RATE_LIMIT_FAILURES_PER_SUBJECT: '1000000',
} as const;

export type Params = Record<string, string | string[] | undefined>;

function toSearchParams(params: Params): URLSearchParams {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.append(key, v);
  }
  return out;
}

/** The default authorization request of a fixture's client: code flow, S256, a state, a nonce. */
export function authorizeParams(
  fx: ProjectFixture,
  overrides: Params = {},
): { params: Params; pkce: Pkce; state: string } {
  const pkce = pkcePair();
  const state = randomState();
  const params: Params = {
    response_type: 'code',
    client_id: fx.client.id,
    redirect_uri: fx.client.redirectUris?.[0],
    scope: 'openid offline_access',
    state,
    nonce: randomState(),
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    ...overrides,
  };
  return { params, pkce, state: typeof params.state === 'string' ? params.state : state };
}

export interface PageResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The Location header, parsed, when the answer is a redirect. */
  location: URL | undefined;
}

/** A page answer read in full, its redirect parsed. */
export async function page(response: Response): Promise<PageResponse> {
  const location = response.headers.get('location');
  return {
    status: response.status,
    headers: response.headers,
    text: await response.text(),
    location: location ? new URL(location) : undefined,
  };
}

/** GET (or form POST) /oauth2/authorize without following redirects. */
export async function authorize(
  server: { baseUrl: string },
  params: Params,
  options: { method?: 'GET' | 'POST'; headers?: Record<string, string> } = {},
): Promise<PageResponse> {
  const search = toSearchParams(params);
  if (options.method === 'POST') {
    return page(
      await fetch(new URL('oauth2/authorize', server.baseUrl), {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
        body: search.toString(),
      }),
    );
  }
  const url = new URL('oauth2/authorize', server.baseUrl);
  url.search = search.toString();
  return page(await fetch(url, { redirect: 'manual', headers: options.headers ?? {} }));
}

const HTML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" };

/** The hidden fields of the hosted sign-in form (values HTML-unescaped). */
export function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    const unescapeHtml = (s: string) =>
      s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => HTML_ENTITIES[e] ?? _);
    fields[unescapeHtml(m[1] ?? '')] = unescapeHtml(m[2] ?? '');
  }
  return fields;
}

/** `name=value` of a Set-Cookie the response carried, for sending it back as a Cookie header. */
export function cookiePair(headers: Headers, name: string): string | undefined {
  for (const cookie of headers.getSetCookie()) {
    const [pair] = cookie.split(';');
    if (pair?.startsWith(`${name}=`)) return pair;
  }
  return undefined;
}

/** Submits the hosted sign-in form a previous GET rendered, as a browser would. */
export async function submitSignIn(
  server: { baseUrl: string },
  form: PageResponse,
  credentials: { email: string; password: string },
  extra: Record<string, string> = {},
): Promise<PageResponse> {
  const cookie = cookiePair(form.headers, 'fedhir_authz');
  if (form.status !== 200 || !cookie) throw new Error(`no sign-in form (${form.status}): ${form.text}`);
  return page(
    await fetch(new URL('oauth2/authorize', server.baseUrl), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ ...hiddenFields(form.text), ...credentials, ...extra }).toString(),
    }),
  );
}

export interface AuthorizeResult {
  response: PageResponse;
  /** The redirect back to the app. */
  location: URL;
  code: string | undefined;
  state: string | undefined;
  iss: string | undefined;
}

/**
 * The full browser flow: GET /oauth2/authorize → hosted form (hidden fields, `csrf`, the
 * `fedhir_authz` cookie) → POST e-mail and password → 302 to the app with `code`, `state`, `iss`.
 */
export async function signInThroughAuthorize(
  server: { baseUrl: string },
  fx: ProjectFixture,
  params: Params,
  options: { method?: 'GET' | 'POST'; email?: string; password?: string } = {},
): Promise<AuthorizeResult> {
  const form = await authorize(server, params, { method: options.method ?? 'GET' });
  const response = await submitSignIn(server, form, {
    email: options.email ?? fx.admin.email,
    password: options.password ?? fx.admin.password,
  });
  if (response.status !== 302 || !response.location) {
    throw new Error(`sign-in did not redirect (${response.status}): ${response.text}`);
  }
  const location = response.location;
  return {
    response,
    location,
    code: location.searchParams.get('code') ?? undefined,
    state: location.searchParams.get('state') ?? undefined,
    iss: location.searchParams.get('iss') ?? undefined,
  };
}

/** A code through the hosted page plus what redeeming it needs. */
export async function authorizeCode(
  server: { baseUrl: string },
  fx: ProjectFixture,
  overrides: Params = {},
): Promise<{ code: string; pkce: Pkce; redirectUri: string; params: Params }> {
  const { params, pkce } = authorizeParams(fx, overrides);
  const result = await signInThroughAuthorize(server, fx, params);
  if (!result.code) throw new Error(`no code: ${result.location}`);
  return { code: result.code, pkce, redirectUri: String(params.redirect_uri), params };
}

export interface PasswordCodeOptions {
  /** The client to sign in for; `null` for none (Medplum's /auth/login default). Default: fx.client. */
  clientId?: string | null;
  scope?: string;
  nonce?: string;
  /** `null` to send no challenge. */
  pkce?: Pkce | null;
  email?: string;
  password?: string;
  projectId?: string;
  /** Redeem with client_secret_basic (for clients with `requireClientAuth`). */
  clientSecret?: string;
}

/** POST /auth/login (the Medplum SDK's password sign-in): a code bound to the PKCE challenge. */
export async function passwordCode(
  server: { baseUrl: string },
  fx: ProjectFixture,
  options: PasswordCodeOptions = {},
): Promise<{ code: string; login: string; pkce: Pkce | undefined }> {
  const pkce = options.pkce === null ? undefined : (options.pkce ?? pkcePair());
  const clientId = options.clientId === null ? undefined : (options.clientId ?? fx.client.id);
  const response = await call(server, 'POST', '/auth/login', {
    body: {
      email: options.email ?? fx.admin.email,
      password: options.password ?? fx.admin.password,
      ...(clientId ? { clientId } : {}),
      ...(options.projectId ? { projectId: options.projectId } : {}),
      ...(options.scope !== undefined ? { scope: options.scope } : {}),
      ...(options.nonce !== undefined ? { nonce: options.nonce } : {}),
      ...(pkce ? { codeChallenge: pkce.challenge, codeChallengeMethod: 'S256' } : {}),
    },
  });
  if (response.status !== 200 || typeof response.body?.code !== 'string') {
    throw new Error(`/auth/login failed (${response.status}): ${JSON.stringify(response.body)}`);
  }
  return { code: response.body.code, login: response.body.login, pkce };
}

export type FormResponse = Awaited<ReturnType<typeof postForm>>;

/** POST /oauth2/token. */
export function token(
  server: { baseUrl: string },
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<FormResponse> {
  return postForm(server, '/oauth2/token', form, headers);
}

export interface Tokens {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  expires_in: number;
  scope: string;
  token_type: string;
}

/** Signs in through /auth/login and redeems the code: a complete token response. */
export async function passwordTokens(
  server: { baseUrl: string },
  fx: ProjectFixture,
  options: PasswordCodeOptions = {},
): Promise<Tokens> {
  const { code, pkce } = await passwordCode(server, fx, options);
  const clientId = options.clientId === null ? undefined : (options.clientId ?? fx.client.id);
  const auth: Record<string, string> =
    clientId && options.clientSecret ? { authorization: basic(clientId, options.clientSecret) } : {};
  const response = await token(
    server,
    {
      grant_type: 'authorization_code',
      code,
      ...(clientId && !options.clientSecret ? { client_id: clientId } : {}),
      ...(pkce ? { code_verifier: pkce.verifier } : {}),
    },
    auth,
  );
  if (response.status !== 200)
    throw new Error(`token failed (${response.status}): ${JSON.stringify(response.body)}`);
  return response.body as unknown as Tokens;
}

/** POST /oauth2/token grant_type=refresh_token. */
export function refresh(
  server: { baseUrl: string },
  refreshToken: string,
  extra: Record<string, string> = {},
  headers: Record<string, string> = {},
): Promise<FormResponse> {
  return token(server, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }, headers);
}

/** GET /oauth2/userinfo with a bearer token. */
export function userinfo(server: { baseUrl: string }, accessToken: string) {
  return call(server, 'GET', '/oauth2/userinfo', { token: accessToken });
}

/** POST /oauth2/introspect authenticated as `client` (Basic). */
export function introspect(
  server: { baseUrl: string },
  client: { id: string; secret: string },
  tokenValue: string,
): Promise<FormResponse> {
  return postForm(
    server,
    '/oauth2/introspect',
    { token: tokenValue },
    { authorization: basic(client.id, client.secret) },
  );
}

/** A second ClientApplication in the fixture's project, through the admin API. */
export async function createClient(
  server: { baseUrl: string },
  fx: ProjectFixture,
  body: { name?: string; redirectUris?: string[] } = {},
): Promise<ClientApplication & { secret: string }> {
  const created = await call(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
    token: fx.admin.token,
    body: {
      name: body.name ?? 'Other client',
      redirectUris: body.redirectUris ?? ['https://other.example.com/cb'],
    },
  });
  if (created.status !== 201) throw new Error(`client failed: ${JSON.stringify(created.body)}`);
  return created.body;
}

/**
 * Changes ClientApplication settings that no admin API exposes yet (`pkceOptional`,
 * `requireClientAuth`, `grantType`, `refreshTokenReuseGrace`, `idTokenSignedResponseAlg`, a chosen
 * secret digest): a direct repository update plus the invalidation the admin API would publish.
 */
export async function setClient(
  server: TestServer,
  clientId: string,
  patch: Partial<StoredClient>,
): Promise<void> {
  const stored = await server.services.repo.read<StoredClient>('ClientApplication', clientId);
  if (!stored) throw new Error(`no client ${clientId}`);
  await server.services.repo.update<StoredClient>({ ...stored, ...patch });
  server.services.clients.changed(clientId);
}

/**
 * Deactivates a membership. No admin API does this yet: a direct repository update plus the
 * `membership` invalidation that the admin API will publish.
 */
export async function deactivateMembership(server: TestServer, membershipId: string): Promise<void> {
  const stored = await server.services.repo.read<ProjectMembership>('ProjectMembership', membershipId);
  if (!stored) throw new Error(`no membership ${membershipId}`);
  await server.services.repo.update<ProjectMembership>({ ...stored, active: false });
  server.services.bus.publish({ topic: 'membership', id: membershipId });
}

/** Invites a password user into the fixture's project (admin API) and answers its credentials. */
export async function inviteUser(
  server: { baseUrl: string },
  fx: ProjectFixture,
  input: { email: string; password?: string; firstName?: string },
): Promise<{ email: string; password: string; membership: ProjectMembership }> {
  const password = input.password ?? `pw-${randomState()}-long`;
  const invited = await call(server, 'POST', `/admin/projects/${fx.project.id}/invite`, {
    token: fx.admin.token,
    body: {
      resourceType: 'Practitioner',
      firstName: input.firstName ?? 'Test',
      lastName: 'User',
      email: input.email,
      password,
    },
  });
  if (invited.status !== 201) throw new Error(`invite failed: ${JSON.stringify(invited.body)}`);
  return { email: input.email, password, membership: invited.body };
}

/**
 * Simulates time passing for a code (no fake clock reaches a real server's database): moves its
 * expiry into the past, as the clock would after the 5-minute lifetime.
 */
export async function expireCode(server: TestServer, code: string): Promise<void> {
  await server.database.db.query(
    `UPDATE login SET code_expires_at = now() - interval '1 second' WHERE code_digest = $1`,
    [digest(code)],
  );
}

/** Same for a refresh token's absolute expiry. */
export async function expireRefreshToken(server: TestServer, refreshToken: string): Promise<void> {
  await server.database.db.query(
    `UPDATE refresh_token SET expires_at = now() - interval '1 second' WHERE digest = $1`,
    [digest(refreshToken)],
  );
}

/** Moves a rotated refresh token's rotation time back past the reuse grace (default 10 s). */
export async function ageRotation(server: TestServer, refreshToken: string, seconds: number): Promise<void> {
  await server.database.db.query(
    `UPDATE refresh_token SET rotated_at = rotated_at - make_interval(secs => $2) WHERE digest = $1`,
    [digest(refreshToken), seconds],
  );
}

/** Decodes a JWT's header and payload without verifying (assertions on shape only). */
export function jwtParts(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')),
  };
}

type AnyResponse = { status: number; headers: Headers; body: unknown };

/**
 * The catalogue's T(x): HTTP 400 with JSON `{error: x, error_description}` and
 * `Cache-Control: no-store`.
 */
export function assertT(response: AnyResponse, error: string, status = 400): void {
  const body = response.body as { error?: unknown; error_description?: unknown };
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(body?.error, error, JSON.stringify(body));
  assert.equal(typeof body?.error_description, 'string');
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
}

/** The catalogue's T401: 401 `invalid_client`, with `WWW-Authenticate: Basic` when Basic was used. */
export function assertT401(response: AnyResponse, usedBasic: boolean): void {
  assertT(response, 'invalid_client', 401);
  const challenge = response.headers.get('www-authenticate');
  if (usedBasic) assert.match(challenge ?? '', /^Basic\b/);
}
