import { Conflict } from '../errors/http-errors.ts';
import type { Patient, ProjectMembership, User } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import type { Queryable } from '../storage/db.ts';
import { isUuid } from '../storage/resources.ts';
import type { ExternalIdentityClaims } from './claims.ts';
import type { StoredIdentityProvider } from './provider.ts';

/** A mapping refusal: always the caller's problem (400), with a reason safe to show. */
export class MappingError extends Error {
  constructor(
    readonly reason:
      | 'missing-sub'
      | 'missing-email'
      | 'email-not-verified'
      | 'not-found'
      | 'inactive'
      | 'ambiguous'
      | 'membership-mismatch'
      | 'link-conflict',
    message: string,
  ) {
    super(message);
  }
}

export interface MappingInput {
  projectId: string;
  idp: StoredIdentityProvider;
  identity: ExternalIdentityClaims;
  /** An explicit choice among several matching memberships (token exchange `membership_id`). */
  membershipId?: string;
}

interface LinkRow {
  membership_id: string;
  provider: string;
  subject: string;
}

const projectOf = (m: ProjectMembership) => m.project.reference.replace('Project/', '');

/**
 * Maps a verified external identity to a ProjectMembership of the client's project (protocol.md
 * §3.4), shared by external sign-in and token exchange:
 * 1. an existing link (project, provider, sub) decides;
 * 2. else `useSubject`: `sub` → membership.externalId; else the verified e-mail → User → membership;
 * 3. the membership found is linked to (provider, sub) — and refused when it is already linked to the
 *    same provider with another `sub` (a recycled e-mail, RP-43), or, by subject, to another provider
 *    (TX-25: two providers may issue the same `sub`).
 * Only memberships of the client's project count (RP-45, TX-27); several matches need an explicit
 * choice (§7.15).
 */
export async function mapIdentity(services: Services, input: MappingInput): Promise<ProjectMembership> {
  const { projectId, idp, identity } = input;
  if (!identity.sub) throw new MappingError('missing-sub', 'the identity has no subject (sub)');
  const { db, repo } = services;

  // Links never change once made, so they are cached; the membership itself comes from the bearer
  // check's cache, which membership changes invalidate on every instance (protocol.md §6).
  const linkKey = `${projectId}\n${identity.provider}\n${identity.sub}`;
  let linkedMembershipId = services.linkCache.get(linkKey);
  if (linkedMembershipId === undefined) {
    const linked = await db.query<LinkRow>(
      'SELECT membership_id, provider, subject FROM external_identity WHERE project_id = $1 AND provider = $2 AND subject = $3',
      [projectId, identity.provider, identity.sub],
    );
    linkedMembershipId = linked[0]?.membership_id;
    if (linkedMembershipId) services.linkCache.set(linkKey, linkedMembershipId);
  }
  if (linkedMembershipId) {
    const membership = await services.access.membership(linkedMembershipId);
    if (!membership) throw new MappingError('not-found', 'user not found in this project');
    if (membership.active === false) throw new MappingError('inactive', 'membership is not active');
    if (input.membershipId && input.membershipId !== membership.id) {
      throw new MappingError('membership-mismatch', 'membership_id does not belong to this user');
    }
    return membership;
  }

  let candidates: ProjectMembership[];
  let user: User | undefined;
  if (idp.useSubject) {
    const byExternalId = await repo.findMembershipByExternalId(projectId, identity.sub);
    candidates = byExternalId ? [byExternalId] : [];
  } else {
    if (!identity.email) throw new MappingError('missing-email', 'the identity has no e-mail address');
    if (!emailTrusted(identity, idp)) {
      throw new MappingError('email-not-verified', 'e-mail address not verified by the identity provider');
    }
    user = await repo.findUserByEmail(identity.email, projectId);
    candidates = user ? await repo.findMemberships(`User/${user.id}`, projectId) : [];
  }
  candidates = candidates.filter((m) => projectOf(m) === projectId);
  if (input.membershipId !== undefined) {
    if (!isUuid(input.membershipId))
      throw new MappingError('membership-mismatch', 'membership_id is not valid');
    candidates = candidates.filter((m) => m.id === input.membershipId);
    if (candidates.length === 0)
      throw new MappingError('membership-mismatch', 'membership_id does not belong to this user');
  }
  const active = candidates.filter((m) => m.active !== false);
  if (candidates.length === 0 && idp.justInTimeProvisioning && input.membershipId === undefined) {
    return provision(services, projectId, identity, idp, user);
  }
  if (candidates.length === 0) throw new MappingError('not-found', 'user not found in this project');
  if (active.length === 0) throw new MappingError('inactive', 'membership is not active');
  if (active.length > 1)
    throw new MappingError('ambiguous', 'membership_id required: several profiles match');
  const membership = active[0] as ProjectMembership;

  const links = await db.query<LinkRow>(
    'SELECT membership_id, provider, subject FROM external_identity WHERE membership_id = $1',
    [membership.id],
  );
  if (links.some((l) => l.provider === identity.provider && l.subject !== identity.sub)) {
    throw new MappingError(
      'link-conflict',
      'this user is linked to another account at the identity provider',
    );
  }
  if (idp.useSubject && links.some((l) => l.provider !== identity.provider)) {
    throw new MappingError('link-conflict', 'this user is linked to another identity provider');
  }
  await db.query(
    `INSERT INTO external_identity (project_id, provider, subject, membership_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (project_id, provider, subject) DO NOTHING`,
    [projectId, identity.provider, identity.sub, membership.id],
  );
  return membership;
}

/**
 * Whether the identity's e-mail may identify a user (protocol.md §3.4, OIDC Core §5.7: an unverified
 * e-mail is not an identifier): `email_verified` true (or Cognito's "true"), or absent when the
 * provider is configured with `allowUnverifiedEmail`.
 */
function emailTrusted(identity: ExternalIdentityClaims, idp: StoredIdentityProvider): boolean {
  return (
    identity.emailVerified === true ||
    (identity.emailVerified === undefined && idp.allowUnverifiedEmail === true)
  );
}

/**
 * Just-in-time provisioning (protocol.md §3.4, `justInTimeProvisioning`): a user the project does not
 * know yet gets a Patient profile and a membership whose `externalId` is the provider's `sub`, linked
 * to (provider, sub) — all in one transaction, so a failure leaves nothing half-made. The User is the
 * one the verified e-mail already names in this scope (e-mail mode), else a new project-scoped User;
 * the e-mail is stored only when it is trusted. Two concurrent first sign-ins of one subject meet at
 * the link's primary key and the membership's unique `externalId`: the loser re-reads the winner's link.
 */
async function provision(
  services: Services,
  projectId: string,
  identity: ExternalIdentityClaims,
  idp: StoredIdentityProvider,
  existingUser: User | undefined,
): Promise<ProjectMembership> {
  const { db, repo } = services;
  const email = identity.email !== undefined && emailTrusted(identity, idp) ? identity.email : undefined;
  const firstName = identity.givenName ?? '';
  const lastName = identity.familyName ?? '';
  const display = `${firstName} ${lastName}`.trim() || email || identity.sub;
  try {
    return await db.transaction(async (tx) => {
      let user = existingUser;
      if (!user) {
        // An e-mail already held in this scope (useSubject mode) is not claimed a second time.
        const taken = email ? await repo.findUserByEmail(email, projectId, tx) : undefined;
        user = await repo.create<User>(
          {
            resourceType: 'User',
            meta: { project: projectId },
            firstName,
            lastName,
            ...(email && !taken ? { email, emailVerified: true } : {}),
            project: { reference: `Project/${projectId}` },
          },
          { tx },
        );
      }
      const profile = await repo.create<Patient>(
        {
          resourceType: 'Patient',
          meta: { project: projectId },
          ...(firstName || lastName
            ? {
                name: [
                  { ...(firstName ? { given: [firstName] } : {}), ...(lastName ? { family: lastName } : {}) },
                ],
              }
            : {}),
          ...(email ? { telecom: [{ system: 'email', value: email }] } : {}),
        },
        { tx },
      );
      const membership = await repo.create<ProjectMembership>(
        {
          resourceType: 'ProjectMembership',
          meta: { project: projectId },
          project: { reference: `Project/${projectId}` },
          user: { reference: `User/${user.id}`, ...(email ? { display: email } : {}) },
          profile: { reference: `Patient/${profile.id}`, display },
          externalId: identity.sub,
          admin: false,
          active: true,
          // Self-registered users get exactly the access the provider's configuration names: never
          // the project's unrestricted default (validated at save: idp-config.ts).
          ...(idp.justInTimeAccessPolicy ? { accessPolicy: { reference: idp.justInTimeAccessPolicy } } : {}),
        },
        { tx },
      );
      await link(tx, projectId, identity, membership.id);
      return membership;
    });
  } catch (err) {
    if (!(err instanceof Conflict)) throw err;
    const winner = await db.query<LinkRow>(
      'SELECT membership_id, provider, subject FROM external_identity WHERE project_id = $1 AND provider = $2 AND subject = $3',
      [projectId, identity.provider, identity.sub],
    );
    const membership = winner[0]
      ? await repo.read<ProjectMembership>('ProjectMembership', winner[0].membership_id)
      : undefined;
    if (!membership) {
      throw new MappingError('link-conflict', 'this subject is already used by another user of this project');
    }
    return membership;
  }
}

/** Inserts the link (project, provider, sub) → membership; a concurrent insert of the same key is a {@link Conflict}. */
async function link(
  tx: Queryable,
  projectId: string,
  identity: ExternalIdentityClaims,
  membershipId: string,
): Promise<void> {
  const rows = await tx.query(
    `INSERT INTO external_identity (project_id, provider, subject, membership_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (project_id, provider, subject) DO NOTHING RETURNING membership_id`,
    [projectId, identity.provider, identity.sub, membershipId],
  );
  if (rows.length === 0) throw new Conflict('this subject was linked concurrently');
}
