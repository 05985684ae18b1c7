import type { AuthContext } from '../auth/access.ts';
import type { Practitioner, Project, ProjectMembership, Reference, User } from '../model/types.ts';
import type { Services } from '../services/container.ts';

/**
 * POST /admin/projects: a new project whose first admin is the caller (a new Practitioner profile
 * in the new project, or the calling ClientApplication itself).
 */
export async function createProject(services: Services, auth: AuthContext, name: string): Promise<Project> {
  const { repo, db } = services;
  const callerRef = auth.membership.user.reference;
  return db.transaction(async (tx) => {
    const project = await repo.create<Project>(
      {
        resourceType: 'Project',
        name,
        ...(callerRef.startsWith('User/') ? { owner: { reference: callerRef } } : {}),
      },
      { tx },
    );
    let profile: Reference;
    if (callerRef.startsWith('User/')) {
      const user = await repo.read<User>('User', callerRef.slice('User/'.length), tx);
      const practitioner = await repo.create<Practitioner>(
        {
          resourceType: 'Practitioner',
          meta: { project: project.id },
          name: [{ given: [user?.firstName ?? ''], family: user?.lastName ?? '' }],
          ...(user?.email ? { telecom: [{ system: 'email', use: 'work', value: user.email }] } : {}),
        },
        { tx },
      );
      profile = { reference: `Practitioner/${practitioner.id}` };
    } else {
      profile = { reference: callerRef };
    }
    await repo.create<ProjectMembership>(
      {
        resourceType: 'ProjectMembership',
        meta: { project: project.id },
        project: { reference: `Project/${project.id}` },
        user: { reference: callerRef },
        profile,
        admin: true,
        active: true,
      },
      { tx },
    );
    return project;
  });
}
