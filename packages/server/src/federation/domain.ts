import { createHash } from 'node:crypto';
import type { LoginRecord } from '../auth/logins.ts';
import { chooseMembership } from '../auth/start-login.ts';
import { digest, digestMatches, randomSecret } from '../crypto/digest.ts';
import { BadRequest } from '../errors/http-errors.ts';
import { emailDomain, normalizeEmail } from '../model/email.ts';
import type { DomainConfiguration, ProjectMembership } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import { isUuid } from '../storage/resources.ts';
import type { ExternalIdentityClaims } from './claims.ts';
import { MappingError, mapIdentity } from './mapping.ts';
import { resolveProvider, type StoredIdentityProvider } from './provider.ts';

/**
 * Home-realm discovery and the domain flow (protocol.md §1 "DomainConfiguration", §2 `POST
 * /auth/method` and `GET /auth/login/:login`, §3.1 "Without a client"): a DomainConfiguration names
 * the identity provider of every user whose e-mail is at its domain, and the one project whose
 * memberships such a sign-in may reach.
 */

/** The binding cookie of a domain sign-in: HttpOnly, SameSite=Lax, scoped to the hosted pages. */
export const SIGNIN_COOKIE = 'fedhir_signin';
/** The paths it is scoped to: the hosted chooser and its JSON counterpart for Medplum's app. */
export const SIGNIN_COOKIE_PATHS = ['/signin', '/auth/login'] as const;
/** Matches LoginStore.chooseMembership: a pending login can be completed for 10 minutes. */
export const SIGNIN_TTL_SECONDS = 600;

/** A usable DomainConfiguration: its domain, provider and the project its sign-ins belong to. */
export interface DomainRealm {
  id: string;
  domain: string;
  projectId: string;
  idp: StoredIdentityProvider;
}

/** What a domain login keeps in `login.details` (server-side only; never answered). */
interface DomainDetails {
  domainFlow: true;
  domainConfiguration: string;
  domain: string;
  provider: string;
  /** SHA-256 of the binding cookie: only the browser that completed the callback holds it. */
  bindingDigest: string;
  /** The verified identity, so the chosen membership is mapped (and linked) like any other. */
  identity: Pick<ExternalIdentityClaims, 'provider' | 'sub' | 'email' | 'emailVerified'>;
}

const projectIdOf = (config: DomainConfiguration): string | undefined => {
  const ref = config.project?.reference;
  const id = typeof ref === 'string' && ref.startsWith('Project/') ? ref.slice('Project/'.length) : undefined;
  return id && isUuid(id) ? id : undefined;
};

/**
 * The DomainConfiguration of `domain` (exact, lower-cased: no suffix or subdomain matching, RP-44),
 * preferring one of `projectId` when several could match (Medplum's project-scoped lookup first);
 * today the database holds at most one per domain. A configuration without an identity provider or
 * without its `project` cannot be used: a domain sign-in must know which project it reaches, and
 * falling back to the owner (the super admin's project) would hand that project to the provider.
 */
export async function findDomainRealm(
  services: Services,
  domain: string,
  projectId?: string,
): Promise<DomainRealm | undefined> {
  const wanted = domain.trim().toLowerCase();
  if (wanted === '' || wanted.length > 253) return undefined;
  const rows = await services.db.query<{ content: DomainConfiguration }>(
    `SELECT content FROM resource
     WHERE resource_type = 'DomainConfiguration' AND NOT deleted AND lower(content->>'domain') = $1
     ORDER BY (content->'project'->>'reference' = $2 OR project_id::text = $3) DESC NULLS LAST, last_updated
     LIMIT 1`,
    [wanted, `Project/${projectId ?? ''}`, projectId ?? ''],
  );
  const config = rows[0]?.content;
  if (!config?.identityProvider) return undefined;
  const project = projectIdOf(config);
  if (!project) return undefined;
  return {
    id: config.id,
    domain: wanted,
    projectId: project,
    idp: config.identityProvider as StoredIdentityProvider,
  };
}

/** A DomainConfiguration by id (the chooser re-reads the provider the sign-in started with). */
async function realmById(services: Services, id: string): Promise<DomainRealm | undefined> {
  const config = await services.repo.read<DomainConfiguration>('DomainConfiguration', id);
  if (!config) return undefined;
  return findDomainRealm(services, config.domain, projectIdOf(config));
}

/**
 * POST /auth/method: `{domain, authorizeUrl}` when the e-mail's domain has a usable
 * DomainConfiguration, else `{}`. The URL is built as Medplum builds it (the provider's authorization
 * endpoint with client_id, our callback, response_type=code, scope=openid profile email); the app adds
 * its JSON `state` (§3.1). For an issuer-only provider the endpoint comes from discovery.
 */
export async function discoverHomeRealm(
  services: Services,
  body: { email?: unknown; projectId?: unknown } | undefined,
): Promise<{ domain: string; authorizeUrl: string } | Record<string, never>> {
  const email = normalizeEmail(body?.email);
  if (!email) throw new BadRequest('Valid email address is required', 'email');
  const projectId =
    typeof body?.projectId === 'string' && isUuid(body.projectId) ? body.projectId : undefined;
  const realm = await findDomainRealm(services, emailDomain(email), projectId);
  if (!realm) return {};
  let endpoint = realm.idp.authorizeUrl;
  try {
    if (!endpoint) endpoint = (await resolveProvider(services, realm.idp)).as.authorization_endpoint;
    if (!endpoint) throw new Error('no authorization endpoint');
    const url = new URL(endpoint);
    url.searchParams.set('client_id', realm.idp.clientId ?? '');
    url.searchParams.set('redirect_uri', `${services.config.baseUrl}auth/external`);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', 'openid profile email');
    return { domain: realm.domain, authorizeUrl: url.href };
  } catch {
    // A provider that cannot be discovered, or a malformed endpoint (Medplum's message); the cause
    // stays in fedhir (no upstream detail is echoed to an anonymous caller).
    throw new BadRequest('Failed to construct URL for the domain', 'email');
  }
}

/** A domain-flow refusal; the message is fixed text, safe to show and to audit. */
export class DomainFlowError extends Error {}

/**
 * RP-44: the identity's e-mail must be trusted (verified, or absent-verification allowed by the
 * provider's `allowUnverifiedEmail`, as §3.4) and its domain — after the last `@`, lower-cased — must
 * equal the configured domain exactly. `a@sub.example.com`, `a@example.com.evil.com`,
 * `a@evilexample.com` and quoted local parts (`"a@example.com"@evil.com`, refused by
 * {@link normalizeEmail}) never pass for `example.com`.
 */
export function assertEmailInDomain(identity: ExternalIdentityClaims, realm: DomainRealm): void {
  const email = normalizeEmail(identity.email);
  if (!email) throw new DomainFlowError('the identity has no valid e-mail address');
  const trusted =
    identity.emailVerified === true ||
    (identity.emailVerified === undefined && realm.idp.allowUnverifiedEmail === true);
  if (!trusted) throw new DomainFlowError('e-mail address not verified by the identity provider');
  if (emailDomain(email) !== realm.domain) throw new DomainFlowError('Email address does not match domain');
}

export interface DomainLoginResult {
  login: LoginRecord;
  /** The binding cookie's value (the login stores only its digest). */
  cookie: string;
  /** The membership when exactly one matched (the login then has its code), else undefined. */
  membership: ProjectMembership | undefined;
}

/**
 * The domain flow after the identity is established: maps it within the configuration's project
 * only, creates a Login without a client, and binds it to a new cookie. One membership: the login is
 * completed (its code issued and kept server-side). Several: no code; the hosted chooser decides
 * (§7.15, never an implicit first).
 *
 * Without an app there is no PKCE challenge of anyone's in `state`; a code is then bound to a
 * challenge whose verifier nobody knows, so a login id seen elsewhere (and completed through
 * `/auth/profile`) never yields a redeemable code. A challenge in `state` (Medplum's hosted app) is
 * kept: that app holds its verifier.
 */
export async function startDomainLogin(
  services: Services,
  realm: DomainRealm,
  identity: ExternalIdentityClaims,
  request: { scope: string; nonce?: string; codeChallenge?: string; codeChallengeMethod?: string },
): Promise<DomainLoginResult> {
  assertEmailInDomain(identity, realm);
  const cookie = randomSecret(32);
  const details: DomainDetails = {
    domainFlow: true,
    domainConfiguration: realm.id,
    domain: realm.domain,
    provider: identity.provider,
    bindingDigest: digest(cookie),
    identity: {
      provider: identity.provider,
      sub: identity.sub,
      email: identity.email,
      emailVerified: identity.emailVerified,
    },
  };
  const pkce =
    request.codeChallenge !== undefined
      ? { codeChallenge: request.codeChallenge, codeChallengeMethod: request.codeChallengeMethod }
      : {
          codeChallenge: createHash('sha256').update(randomSecret(32)).digest('base64url'),
          codeChallengeMethod: 'S256',
        };
  const base = {
    scope: request.scope,
    nonce: request.nonce,
    ...pkce,
    authMethod: 'external' as const,
    details: details as unknown as Record<string, unknown>,
  };

  let membership: ProjectMembership | undefined;
  let candidates: ProjectMembership[] = [];
  try {
    membership = await mapIdentity(services, { projectId: realm.projectId, idp: realm.idp, identity });
  } catch (err) {
    if (!(err instanceof MappingError) || err.reason !== 'ambiguous' || !identity.email) throw err;
    const user = await services.repo.findUserByEmail(identity.email, realm.projectId);
    candidates = user
      ? (await services.repo.findMemberships(`User/${user.id}`, realm.projectId)).filter(
          (m) => m.active !== false,
        )
      : [];
    if (!user || candidates.length < 2) throw err;
    const { login } = await services.logins.create({
      ...base,
      userRef: `User/${user.id}`,
      projectId: realm.projectId,
    });
    return { login, cookie, membership: undefined };
  }
  const { login } = await services.logins.create(
    {
      ...base,
      userRef: membership.user.reference,
      membershipId: membership.id,
      projectId: realm.projectId,
      profileRef: membership.profile.reference,
    },
    { withCode: true },
  );
  return { login, cookie, membership };
}

/** Whether a login is a domain-flow login (started without a client at `/auth/external`). */
export function isDomainLogin(login: LoginRecord | undefined): login is LoginRecord {
  return (
    login !== undefined &&
    login.clientId === undefined &&
    login.authMethod === 'external' &&
    login.details?.domainFlow === true
  );
}

/** Whether the presented cookie is the one this login was bound to (constant time). */
export function holdsLogin(login: LoginRecord, cookie: string | undefined): boolean {
  if (!cookie || cookie.length > 512) return false;
  const stored = login.details?.bindingDigest;
  return digestMatches(cookie, typeof stored === 'string' ? stored : undefined);
}

/** Whether a pending login can still be completed (LoginStore.chooseMembership's window). */
export function isPending(login: LoginRecord): boolean {
  return (
    login.revokedAt === undefined &&
    login.membershipId === undefined &&
    !login.hadCode &&
    Date.now() - login.authTime.getTime() < SIGNIN_TTL_SECONDS * 1000
  );
}

/** The memberships a pending domain login may choose from: active, of its project only. */
export async function pendingMemberships(
  services: Services,
  login: LoginRecord,
): Promise<ProjectMembership[]> {
  if (!login.projectId) return [];
  return (await services.repo.findMemberships(login.userRef, login.projectId)).filter(
    (m) => m.active !== false,
  );
}

/**
 * Completes a pending domain login with the chosen membership: mapped again with that choice (so it
 * is checked and linked to the provider's subject like any other, §3.4), then the code is issued
 * server-side. Answers the membership.
 */
export async function chooseDomainMembership(
  services: Services,
  login: LoginRecord,
  membershipId: string,
): Promise<ProjectMembership> {
  if (!isPending(login)) throw new BadRequest('Login not found or already completed', 'login');
  const details = login.details as unknown as DomainDetails;
  const realm = await realmById(services, details.domainConfiguration);
  if (!realm || realm.projectId !== login.projectId) {
    throw new BadRequest('The domain configuration of this sign-in changed; please sign in again', 'login');
  }
  const stored = details.identity;
  const identity: ExternalIdentityClaims = {
    provider: stored.provider,
    sub: stored.sub,
    email: stored.email,
    emailVerified: stored.emailVerified,
    givenName: undefined,
    familyName: undefined,
  };
  let membership: ProjectMembership;
  try {
    membership = await mapIdentity(services, {
      projectId: realm.projectId,
      idp: realm.idp,
      identity,
      membershipId,
    });
  } catch (err) {
    if (err instanceof MappingError) throw new BadRequest(err.message, 'membership');
    throw err;
  }
  if (membership.user.reference !== login.userRef) {
    throw new BadRequest('Profile not found for this login', 'membership');
  }
  await chooseMembership(services, login, membership.id);
  return membership;
}
