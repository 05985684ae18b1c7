/**
 * fedhir-side helpers for the external sign-in tests (issue 4, protocol.md §3): clients whose
 * identity provider an administrator configures (admin API, then `PUT /fhir/R4/ClientApplication/:id`
 * — the way the admin app saves it, secret sealed), users invited through the admin API, and the
 * browser's side of `/auth/external` and `/auth/external/start`.
 */
import { randomBytes } from 'node:crypto';
import type { IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import { type ProjectFixture, updateClient } from './fixtures.ts';
import { CookieJar } from './idp.ts';
import { type PageResponse, page } from './oauth-flows.ts';
import { call, type TestServer, tokenForMembership } from './server.ts';

/**
 * Configuration of every federation test: only 127.0.0.1 is allowed for identity providers
 * (127.0.0.2 and [::1] stay blocked), and the failure budgets do not interfere with cases that fail
 * on purpose.
 */
export const FEDERATION_ENV: Record<string, string> = {
  ALLOW_PRIVATE_IDP_URLS: '127.0.0.1',
  RATE_LIMIT_FAILURES_PER_IP: '1000000',
  RATE_LIMIT_FAILURES_PER_SUBJECT: '1000000',
};

/** The app's registered redirect URI in these tests. */
export const APP_REDIRECT = 'https://app.example.com/callback';

export interface IdpClientApp {
  id: string;
  secret: string;
  redirectUri: string;
}

export { updateClient };

/** A new client of the fixture's project with an identity provider (and other settings). */
export async function idpClientApp(
  server: TestServer,
  fx: ProjectFixture,
  identityProvider: IdentityProvider,
  settings: Record<string, unknown> = {},
  redirectUris: string[] = [APP_REDIRECT],
): Promise<IdpClientApp> {
  const created = await call(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
    token: fx.admin.token,
    body: { name: `idp app ${randomBytes(3).toString('hex')}`, redirectUris },
  });
  if (created.status !== 201) throw new Error(`client: ${created.status} ${JSON.stringify(created.body)}`);
  const put = await updateClient(server, fx, created.body.id, { identityProvider, ...settings });
  if (put.status !== 200) throw new Error(`PUT client: ${put.status} ${JSON.stringify(put.body)}`);
  return { id: created.body.id, secret: created.body.secret, redirectUri: redirectUris[0] as string };
}

/** Invites a user into the fixture's project through the admin API; answers the membership. */
export async function invite(
  server: TestServer,
  fx: ProjectFixture,
  user: {
    email?: string;
    externalId?: string;
    resourceType?: 'Practitioner' | 'Patient';
    firstName?: string;
  },
): Promise<ProjectMembership> {
  const superToken = await tokenForMembership(server.services, server.adminMembership);
  const response = await call(server, 'POST', `/admin/projects/${fx.project.id}/invite`, {
    token: superToken,
    body: {
      resourceType: user.resourceType ?? 'Patient',
      firstName: user.firstName ?? 'Ext',
      lastName: 'User',
      ...(user.email ? { email: user.email } : {}),
      ...(user.externalId ? { externalId: user.externalId } : {}),
    },
  });
  if (response.status !== 201) throw new Error(`invite: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as ProjectMembership;
}

export function newEmail(prefix = 'ext'): string {
  return `${prefix}.${randomBytes(5).toString('hex')}@example.com`;
}

export type PageAnswer = PageResponse;

/**
 * GET /auth/external as the browser delivers the provider's redirect: `query` is either the
 * provider's redirect URL or the parameters (repeated ones as arrays); `jar` holds fedhir's cookies.
 */
export async function externalCallback(
  server: { baseUrl: string },
  query: URL | Record<string, string | string[] | undefined>,
  jar: CookieJar = new CookieJar(),
): Promise<PageAnswer> {
  const url = new URL('auth/external', server.baseUrl);
  if (query instanceof URL) {
    url.search = query.search;
  } else {
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
    }
  }
  return page(await jar.fetch(url));
}

/** GET /auth/external/start with the app's parameters; the `fedhir_ext` cookie lands in `jar`. */
export async function externalStart(
  server: { baseUrl: string },
  params: Record<string, string | undefined>,
  jar: CookieJar,
): Promise<PageAnswer> {
  const url = new URL('auth/external/start', server.baseUrl);
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  return page(await jar.fetch(url));
}

/** The §3.1 `state`: JSON of the Medplum LoginRequest, as `getExternalAuthRedirectUri` writes it. */
export function legacyState(fields: Record<string, unknown>): string {
  return JSON.stringify(fields);
}

/** ExternalIdentity links of a membership (project, provider, subject). */
export async function linksOf(
  server: TestServer,
  membershipId: string,
): Promise<Array<{ project_id: string; provider: string; subject: string }>> {
  return server.database.db.query(
    'SELECT project_id, provider, subject FROM external_identity WHERE membership_id = $1',
    [membershipId],
  );
}

/** Logins created so far (a CB✗ must create none). */
export async function loginCount(server: TestServer): Promise<number> {
  const rows = await server.database.db.query<{ n: string | number }>(
    "SELECT count(*) AS n FROM login WHERE auth_method = 'external'",
  );
  return Number(rows[0]?.n ?? 0);
}

export { CookieJar };

/** An AccessPolicy in the fixture's project (for just-in-time provisioned users). */
export async function accessPolicy(
  server: TestServer,
  fx: ProjectFixture,
  resource: { resourceType: string; readonly?: boolean }[] = [{ resourceType: 'Patient', readonly: true }],
): Promise<string> {
  const created = await call(server, 'POST', '/fhir/R4/AccessPolicy', {
    token: fx.admin.token,
    body: { resourceType: 'AccessPolicy', name: 'just-in-time users', resource },
  });
  if (created.status !== 201) throw new Error(`AccessPolicy: ${JSON.stringify(created.body)}`);
  return `AccessPolicy/${created.body.id}`;
}
