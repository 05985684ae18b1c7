import { isDeepStrictEqual } from 'node:util';
import { validateRedirectUris } from '../admin/clients.ts';
import type { AuthContext } from '../auth/access.ts';
import { BadRequest, Forbidden, NotFound } from '../errors/http-errors.ts';
import { validateIdentityProvider } from '../federation/idp-config.ts';
import type { ClientApplication, Project, ProjectMembership, Resource } from '../model/types.ts';
import type { StoredClient } from '../oauth/clients.ts';
import type { Services } from '../services/container.ts';

/** Types that exist only server-side: never readable or writable through /fhir. */
const HIDDEN = new Set(['Login']);
/** Types whose every read and write needs a project admin. */
const ADMIN_ONLY = new Set(['ProjectMembership', 'ClientApplication', 'AuditEvent', 'AccessPolicy', 'User']);

/**
 * The rules of protocol.md §1 "Protected fields" and §6 on the authentication resources, applied to
 * generic FHIR reads. Throws 404 for what the caller may not know exists.
 */
export function assertMayRead(auth: AuthContext, resourceType: string): void {
  if (HIDDEN.has(resourceType)) throw new NotFound(`Resource type ${resourceType} is not available`);
  if (resourceType === 'DomainConfiguration' && !auth.superAdmin) {
    throw new Forbidden('Only the super admin may read DomainConfiguration');
  }
  if (ADMIN_ONLY.has(resourceType) && !auth.projectAdmin) {
    throw new Forbidden(`Only project admins may read ${resourceType}`);
  }
}

function forbidField(expression: string): never {
  throw new Forbidden(`${expression} cannot be set or changed through the FHIR API`, expression);
}

/** Deep equality that ignores key order (JSONB does not keep it). */
function same(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a ?? null, b ?? null);
}

type WriteKind = 'create' | 'update' | 'delete';

/**
 * Checks a generic FHIR write of an authentication resource and answers the content to store
 * (write-only secrets kept or sealed). A refused write answers 403 naming the field and changes
 * nothing (protocol.md §1 "Protected fields").
 */
export async function guardWrite(
  services: Services,
  auth: AuthContext,
  kind: WriteKind,
  incoming: Resource | undefined,
  stored: Resource | undefined,
): Promise<Resource | undefined> {
  const type = incoming?.resourceType ?? stored?.resourceType ?? '';
  if (HIDDEN.has(type)) throw new NotFound(`Resource type ${type} is not available`);
  switch (type) {
    case 'AuditEvent':
      throw new Forbidden('AuditEvent is append-only and written by the server', 'AuditEvent');
    case 'User':
      throw new Forbidden('Users are managed through /admin/projects/:projectId/invite', 'User');
    case 'Project': {
      if (kind !== 'update' || !auth.projectAdmin)
        throw new Forbidden('Projects are managed through /admin/projects', 'Project');
      const before = stored as Project;
      const after = incoming as Project;
      if (!same(after.superAdmin, before.superAdmin)) forbidField('Project.superAdmin');
      if (!same(after.owner, before.owner)) forbidField('Project.owner');
      return after;
    }
    case 'DomainConfiguration': {
      if (!auth.superAdmin || !auth.projectAdmin) {
        throw new Forbidden('Only the super admin may change DomainConfiguration', 'DomainConfiguration');
      }
      if (incoming) {
        const domain = (incoming as { domain?: unknown }).domain;
        if (typeof domain !== 'string' || !/^[a-z0-9.-]+\.[a-z]{2,}$/i.test(domain)) {
          throw new BadRequest(
            'DomainConfiguration.domain must be a domain name',
            'DomainConfiguration.domain',
          );
        }
        const sealed = await sealProviderSecret(
          services,
          (incoming as { identityProvider?: unknown }).identityProvider,
          (stored as { identityProvider?: Record<string, unknown> } | undefined)?.identityProvider,
          'DomainConfiguration.identityProvider',
        );
        return { ...incoming, domain: domain.toLowerCase(), ...(sealed ? { identityProvider: sealed } : {}) };
      }
      return incoming;
    }
  }
  if (ADMIN_ONLY.has(type) && !auth.projectAdmin)
    throw new Forbidden(`Only project admins may change ${type}`, type);

  if (type === 'ProjectMembership' && incoming) {
    const after = incoming as ProjectMembership;
    if (after.project?.reference !== `Project/${auth.project.id}`) forbidField('ProjectMembership.project');
    if (kind === 'update') {
      const before = stored as ProjectMembership;
      if (!same(after.user, before.user)) forbidField('ProjectMembership.user');
    }
    if (!after.user?.reference || !after.profile?.reference) {
      throw new BadRequest('ProjectMembership needs user and profile', 'ProjectMembership.user');
    }
    return after;
  }

  if (type === 'ClientApplication') {
    if (kind === 'create')
      throw new Forbidden('Create clients through /admin/projects/:projectId/client', 'ClientApplication');
    if (!incoming) return incoming;
    const before = stored as StoredClient;
    const after = { ...(incoming as ClientApplication) } as StoredClient & Record<string, unknown>;
    // Secrets are generated by the server and rotated through an admin action, never chosen.
    for (const field of [
      'secret',
      'retiringSecret',
      'secretDigest',
      'retiringSecretDigest',
      'retiringSecretExpires',
    ]) {
      if (after[field] !== undefined && after[field] !== null) forbidField(`ClientApplication.${field}`);
      delete after[field];
    }
    if (before.secretDigest) after.secretDigest = before.secretDigest;
    if (before.retiringSecretDigest) after.retiringSecretDigest = before.retiringSecretDigest;
    if (before.retiringSecretExpires) after.retiringSecretExpires = before.retiringSecretExpires;
    if (after.redirectUris !== undefined) {
      if (!Array.isArray(after.redirectUris))
        throw new BadRequest('redirectUris must be an array', 'ClientApplication.redirectUris');
      validateRedirectUris(after.redirectUris, 'ClientApplication.redirectUris');
    }
    if (after.redirectUri !== undefined)
      validateRedirectUris([after.redirectUri], 'ClientApplication.redirectUri');
    if (after.identityProvider === null) {
      delete after.identityProvider;
    } else if (after.identityProvider !== undefined) {
      after.identityProvider = await sealProviderSecret(
        services,
        after.identityProvider,
        before.identityProvider as Record<string, unknown> | undefined,
        'ClientApplication.identityProvider',
      );
    }
    const grace = after.refreshTokenReuseGrace;
    if (grace !== undefined && (typeof grace !== 'number' || grace < 0 || grace > 60)) {
      throw new BadRequest(
        'refreshTokenReuseGrace must be a number of seconds from 0 to 60',
        'ClientApplication.refreshTokenReuseGrace',
      );
    }
    return after;
  }
  return incoming;
}

/**
 * `identityProvider.clientSecret` is write-only (protocol.md §1): a string is sealed with SECRET_KEY,
 * an omitted one keeps the stored value (a read-modify-write must not erase it), `null` clears it.
 */
async function sealProviderSecret(
  services: Services,
  incoming: unknown,
  stored: Record<string, unknown> | undefined,
  field: string,
): Promise<ClientApplication['identityProvider']> {
  if (incoming === undefined || incoming === null) return undefined;
  const idp = { ...validateIdentityProvider(incoming, services.config.allowPrivateIdpUrls, field) } as Record<
    string,
    unknown
  >;
  delete idp.clientSecretSet;
  delete idp.clientSecretSealed;
  if (typeof idp.clientSecret === 'string') {
    idp.clientSecretSealed = await services.box.seal(idp.clientSecret);
  } else if (idp.clientSecret === undefined && typeof stored?.clientSecretSealed === 'string') {
    idp.clientSecretSealed = stored.clientSecretSealed;
  } else if (idp.clientSecret !== undefined && idp.clientSecret !== null) {
    throw new BadRequest(`${field}.clientSecret must be a string`, `${field}.clientSecret`);
  }
  delete idp.clientSecret;
  return idp as ClientApplication['identityProvider'];
}
