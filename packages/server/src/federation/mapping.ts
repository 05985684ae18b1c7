import type { ProjectMembership, User } from '../model/types.ts';
import type { Services } from '../services/container.ts';
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

  const linked = await db.query<LinkRow>(
    'SELECT membership_id, provider, subject FROM external_identity WHERE project_id = $1 AND provider = $2 AND subject = $3',
    [projectId, identity.provider, identity.sub],
  );
  if (linked[0]) {
    const membership = await repo.read<ProjectMembership>('ProjectMembership', linked[0].membership_id);
    if (!membership) throw new MappingError('not-found', 'user not found in this project');
    if (membership.active === false) throw new MappingError('inactive', 'membership is not active');
    if (input.membershipId && input.membershipId !== membership.id) {
      throw new MappingError('membership-mismatch', 'membership_id does not belong to this user');
    }
    return membership;
  }

  let candidates: ProjectMembership[];
  if (idp.useSubject) {
    const byExternalId = await repo.findMembershipByExternalId(projectId, identity.sub);
    candidates = byExternalId ? [byExternalId] : [];
  } else {
    if (!identity.email) throw new MappingError('missing-email', 'the identity has no e-mail address');
    if (
      identity.emailVerified === false ||
      (identity.emailVerified === undefined && !idp.allowUnverifiedEmail)
    ) {
      throw new MappingError('email-not-verified', 'e-mail address not verified by the identity provider');
    }
    const user = await repo.findUserByEmail(identity.email, projectId);
    candidates = user ? await repo.findMemberships(`User/${(user as User).id}`, projectId) : [];
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
