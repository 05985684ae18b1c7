import { present } from '../admin/present.ts';
import type { Services } from '../services/container.ts';
import type { AuthContext } from './access.ts';

/**
 * GET /auth/me: what `@medplum/core` stores as the session (medplum-client-behaviour §3): `profile`,
 * `project` and `membership` are required (the SDK dereferences them), `config` recommended.
 */
export async function describeSession(services: Services, auth: AuthContext) {
  const { repo } = services;
  const [profileType, profileId] = auth.membership.profile.reference.split('/') as [string, string];
  const [userType, userId] = auth.membership.user.reference.split('/') as [string, string];
  // One round trip for both (performance.md: /auth/me ≥ 0.5× a single indexed read).
  const policyRef = auth.membership.accessPolicy?.reference;
  const found = await repo.readMany([
    { resourceType: profileType, id: profileId },
    { resourceType: userType, id: userId },
    ...(policyRef?.startsWith('AccessPolicy/')
      ? [{ resourceType: 'AccessPolicy', id: policyRef.slice('AccessPolicy/'.length) }]
      : []),
  ]);
  const accessPolicy = found.find((r) => r.resourceType === 'AccessPolicy');
  const profile = found.find((r) => r.resourceType === profileType && r.id === profileId);
  const user = found.find((r) => r.resourceType === userType && r.id === userId);
  const { project, membership } = auth;
  return {
    user: user ? present(user) : { resourceType: userType, id: userId },
    profile: profile ? present(profile) : { resourceType: profileType, id: profileId },
    project: {
      resourceType: 'Project',
      id: project.id,
      name: project.name,
      ...(project.superAdmin ? { superAdmin: true } : {}),
      ...(project.features ? { features: project.features } : {}),
    },
    membership: {
      resourceType: 'ProjectMembership',
      id: membership.id,
      project: membership.project,
      user: membership.user,
      profile: membership.profile,
      admin: membership.admin === true,
      ...(membership.accessPolicy ? { accessPolicy: membership.accessPolicy } : {}),
    },
    config: { resourceType: 'UserConfiguration', id: 'default', menu: [] },
    // The SDK's getAccessPolicy(): absent means unrestricted (medplum-client-behaviour §3).
    ...(accessPolicy ? { accessPolicy } : {}),
  };
}
