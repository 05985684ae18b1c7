import { digest, randomSecret } from '../crypto/digest.ts';
import { BadRequest, NotFound } from '../errors/http-errors.ts';
import type { StoredClient } from '../oauth/clients.ts';
import type { Services } from '../services/container.ts';

/** How long a rotated secret keeps working (protocol.md §2). */
const RETIRING_GRACE_MS = 24 * 3600 * 1000;

async function loadClient(services: Services, projectId: string, clientId: string): Promise<StoredClient> {
  const client = await services.repo.read<StoredClient>('ClientApplication', clientId);
  if (!client || client.meta.project !== projectId)
    throw new NotFound(`ClientApplication ${clientId} not found`);
  return client;
}

/** Revokes the client_credentials logins of one secret: retiring a secret revokes its tokens. */
async function revokeSecretLogins(services: Services, clientId: string, secretDigest: string): Promise<void> {
  const rows = await services.db.query<{ id: string }>(
    `SELECT id FROM login WHERE auth_method = 'client_credentials' AND client_id = $1
       AND details->>'secretDigest' = $2 AND revoked_at IS NULL`,
    [clientId, secretDigest],
  );
  for (const row of rows) await services.logins.revoke(row.id);
}

/**
 * POST /admin/projects/:projectId/client/:clientId/secret: a new secret, answered once; the old one
 * keeps working as the retiring secret for 24 h (zero-downtime rotation), or until retired.
 */
export async function rotateClientSecret(
  services: Services,
  projectId: string,
  clientId: string,
): Promise<string> {
  const client = await loadClient(services, projectId, clientId);
  if (client.retiringSecretDigest) await revokeSecretLogins(services, client.id, client.retiringSecretDigest);
  const secret = randomSecret(32);
  const next: StoredClient = {
    ...client,
    secretDigest: digest(secret),
    ...(client.secretDigest
      ? {
          retiringSecretDigest: client.secretDigest,
          retiringSecretExpires: new Date(Date.now() + RETIRING_GRACE_MS).toISOString(),
        }
      : {}),
  };
  await services.repo.update(next);
  await services.clients.changed(client.id);
  return secret;
}

/** DELETE …/secret/retiring: the retiring secret stops working now, and its tokens are revoked. */
export async function retireClientSecret(
  services: Services,
  projectId: string,
  clientId: string,
): Promise<void> {
  const client = await loadClient(services, projectId, clientId);
  if (!client.retiringSecretDigest) throw new BadRequest('This client has no retiring secret');
  const { retiringSecretDigest, retiringSecretExpires: _e, ...rest } = client;
  await services.repo.update(rest as StoredClient);
  await services.clients.changed(client.id);
  await revokeSecretLogins(services, client.id, retiringSecretDigest);
}
