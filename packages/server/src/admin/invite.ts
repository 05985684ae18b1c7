import { hashPassword, passwordProblem } from '../crypto/password.ts';
import { BadRequest } from '../errors/http-errors.ts';
import { normalizeEmail } from '../model/email.ts';
import type { Patient, Practitioner, Project, ProjectMembership, User } from '../model/types.ts';
import type { Services } from '../services/container.ts';

export interface InviteRequest {
  resourceType: 'Practitioner' | 'Patient';
  firstName: string;
  lastName: string;
  email?: string;
  externalId?: string;
  password?: string;
  admin?: boolean;
}

/**
 * POST /admin/projects/:projectId/invite: attaches an existing user (same e-mail, project-scoped in
 * this project or server-scoped) or creates a project-scoped one, creates the profile and answers
 * the new ProjectMembership. All in one transaction: a failure leaves nothing half-made.
 */
export async function inviteMember(
  services: Services,
  project: Project,
  input: InviteRequest,
): Promise<ProjectMembership> {
  const { repo, db } = services;
  let email: string | undefined;
  if (input.email !== undefined) {
    email = normalizeEmail(input.email);
    if (!email) throw new BadRequest('email is not a valid e-mail address', 'email');
  }
  if (!email && !input.externalId) throw new BadRequest('email or externalId is required', 'email');
  if (input.password !== undefined) {
    const problem = passwordProblem(input.password);
    if (problem) throw new BadRequest(problem, 'password');
  }
  const passwordHash = input.password !== undefined ? await hashPassword(input.password) : undefined;

  return db.transaction(async (tx) => {
    let user = email ? await repo.findUserByEmail(email, project.id, tx) : undefined;
    if (user?.project && user.project.reference !== `Project/${project.id}`) user = undefined;
    if (!user) {
      user = await repo.create<User>(
        {
          resourceType: 'User',
          meta: { project: project.id },
          firstName: input.firstName,
          lastName: input.lastName,
          ...(email ? { email, emailVerified: false } : {}),
          ...(passwordHash ? { passwordHash } : {}),
          project: { reference: `Project/${project.id}` },
        },
        { tx },
      );
    } else if (passwordHash && !user.passwordHash) {
      user = await repo.update<User>({ ...user, passwordHash }, { tx });
    }
    const profile = await repo.create<Practitioner | Patient>(
      {
        resourceType: input.resourceType,
        meta: { project: project.id },
        name: [{ given: [input.firstName], family: input.lastName }],
        ...(email ? { telecom: [{ system: 'email', use: 'work', value: email }] } : {}),
      },
      { tx },
    );
    return repo.create<ProjectMembership>(
      {
        resourceType: 'ProjectMembership',
        meta: { project: project.id },
        project: { reference: `Project/${project.id}` },
        user: { reference: `User/${user.id}`, ...(email ? { display: email } : {}) },
        profile: {
          reference: `${input.resourceType}/${profile.id}`,
          display: `${input.firstName} ${input.lastName}`.trim(),
        },
        ...(input.externalId ? { externalId: input.externalId } : {}),
        admin: input.admin === true,
        active: true,
      },
      { tx },
    );
  });
}
