import { BadRequest } from '../errors/http-errors.ts';
import type { ProjectMembership } from '../model/types.ts';
import type { StoredClient } from '../oauth/clients.ts';
import { challengeProblem } from '../oauth/pkce.ts';
import type { Services } from '../services/container.ts';
import type { AuthMethod, LoginRecord } from './logins.ts';

export interface StartLoginInput {
  userRef: string;
  authMethod: AuthMethod;
  client: StoredClient | undefined;
  /** Restrict to one project (the request's projectId, or the client's project). */
  projectId: string | undefined;
  scope: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
  /** The redirect_uri of an /oauth2/authorize request, compared again at the token endpoint. */
  authorizeRedirectUri?: string;
  details?: Record<string, unknown>;
}

export type StartLoginResult =
  | { login: LoginRecord; code: string; membership: ProjectMembership }
  | { login: LoginRecord; code: undefined; memberships: ProjectMembership[] };

/** PKCE is mandatory unless the client has `pkceOptional` (protocol.md §3.1, §7.1). */
export function assertPkce(client: StoredClient | undefined, challenge?: string, method?: string): void {
  if (challenge === undefined && method === undefined && client?.pkceOptional) return;
  const problem = challengeProblem(challenge, method);
  if (problem) throw new BadRequest(problem, 'codeChallenge');
}

/**
 * After the user is known: finds the active memberships that count (the client's project only —
 * RP-45), creates the Login, and issues a code when exactly one membership matches. With several,
 * the caller must let the user choose (§7.15: never an implicit first choice).
 */
export async function startLogin(services: Services, input: StartLoginInput): Promise<StartLoginResult> {
  const projectId = input.client?.meta.project ?? input.projectId;
  if (input.client && input.projectId && input.projectId !== input.client.meta.project) {
    throw new BadRequest('projectId does not match the client application', 'projectId');
  }
  const memberships = (await services.repo.findMemberships(input.userRef, projectId)).filter(
    (m) => m.active !== false,
  );
  if (memberships.length === 0) throw new BadRequest('User not found in this project', undefined, 'login');
  const base = {
    userRef: input.userRef,
    clientId: input.client?.id,
    scope: input.scope,
    nonce: input.nonce,
    codeChallenge: input.codeChallenge,
    codeChallengeMethod: input.codeChallengeMethod,
    redirectUri: input.authorizeRedirectUri,
    authMethod: input.authMethod,
    details: {
      ...input.details,
      ...(input.authorizeRedirectUri ? { authorizeRedirectUri: input.authorizeRedirectUri } : {}),
    },
  };
  const [only] = memberships;
  if (memberships.length === 1 && only) {
    const { login, code } = await services.logins.create(
      {
        ...base,
        membershipId: only.id,
        projectId: only.project.reference.replace('Project/', ''),
        profileRef: only.profile.reference,
      },
      { withCode: true },
    );
    return { login, code: code as string, membership: only };
  }
  const { login } = await services.logins.create({ ...base, projectId });
  return { login, code: undefined, memberships };
}

/** Completes a login with the membership the user chose (/auth/profile, the hosted chooser). */
export async function chooseMembership(
  services: Services,
  login: LoginRecord | undefined,
  membershipId: string,
): Promise<string> {
  if (!login || login.revokedAt || login.membershipId || login.hadCode) {
    throw new BadRequest('Login not found or already completed', 'login');
  }
  const membership = await services.repo.read<ProjectMembership>('ProjectMembership', membershipId);
  const projectId = membership?.project.reference.replace('Project/', '');
  if (
    !membership ||
    membership.active === false ||
    membership.user.reference !== login.userRef ||
    (login.projectId !== undefined && projectId !== login.projectId)
  ) {
    throw new BadRequest('Profile not found for this login', 'profile');
  }
  const code = await services.logins.chooseMembership(login.id, {
    membershipId: membership.id,
    projectId: projectId ?? '',
    profileRef: membership.profile.reference,
  });
  if (!code) throw new BadRequest('Login not found or already completed', 'login');
  return code;
}
