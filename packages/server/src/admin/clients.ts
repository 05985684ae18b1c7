import { digest, randomSecret } from '../crypto/digest.ts';
import { BadRequest } from '../errors/http-errors.ts';
import type { ClientApplication, Project, ProjectMembership } from '../model/types.ts';
import { redirectUriProblem } from '../oauth/redirect-uri.ts';
import type { Services } from '../services/container.ts';
import { presentClient } from './present.ts';

export interface NewClientRequest {
  name: string;
  description?: string;
  redirectUris?: string[];
  /** Medplum's admin app sends the legacy single URI. */
  redirectUri?: string;
}

export function validateRedirectUris(uris: readonly unknown[], field: string): string[] {
  return uris.map((uri, i) => {
    const problem = redirectUriProblem(uri);
    if (problem) throw new BadRequest(`${field}[${i}] ${problem}`, `${field}[${i}]`);
    return uri as string;
  });
}

/**
 * POST /admin/projects/:projectId/client: a ClientApplication with a generated 256-bit secret (stored
 * as a SHA-256 digest, answered once here) and its own membership, through which it acts under
 * client_credentials.
 */
export async function createClient(
  services: Services,
  project: Project,
  input: NewClientRequest,
): Promise<ClientApplication> {
  const redirectUris = validateRedirectUris(
    [...(input.redirectUris ?? []), ...(input.redirectUri ? [input.redirectUri] : [])],
    input.redirectUris ? 'redirectUris' : 'redirectUri',
  );
  const secret = randomSecret(32);
  const { repo, db } = services;
  const client = await db.transaction(async (tx) => {
    const created = await repo.create<ClientApplication>(
      {
        resourceType: 'ClientApplication',
        meta: { project: project.id },
        name: input.name,
        ...(input.description ? { description: input.description } : {}),
        ...(redirectUris.length > 0 ? { redirectUris: [...new Set(redirectUris)] } : {}),
        secretDigest: digest(secret),
      },
      { tx },
    );
    await repo.create<ProjectMembership>(
      {
        resourceType: 'ProjectMembership',
        meta: { project: project.id },
        project: { reference: `Project/${project.id}` },
        user: { reference: `ClientApplication/${created.id}`, display: input.name },
        profile: { reference: `ClientApplication/${created.id}`, display: input.name },
        active: true,
      },
      { tx },
    );
    return created;
  });
  return { ...presentClient(client), secret };
}
