import type { LoginStore } from '../auth/logins.ts';
import type { ProjectMembership } from '../model/types.ts';
import type { Db } from '../storage/db.ts';
import type { StoredClient } from './clients.ts';

/**
 * The one long-lived Login per ClientApplication secret that client_credentials tokens name in
 * `login_id` (protocol.md §5), so /auth/me and revocation work for them without a write per token.
 * Created once cluster-wide (a unique index arbitrates concurrent instances) and cached.
 */
export class ClientLogins {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly logins: LoginStore,
  ) {}

  async loginFor(client: StoredClient, membership: ProjectMembership, secretDigest: string): Promise<string> {
    const key = `${client.id}:${secretDigest}`;
    const cached = this.cache.get(key);
    if (cached && (await this.logins.live(cached))) return cached;
    const find = async () =>
      (
        await this.db.query<{ id: string }>(
          `SELECT id FROM login WHERE auth_method = 'client_credentials' AND revoked_at IS NULL
             AND client_id = $1 AND details->>'secretDigest' = $2`,
          [client.id, secretDigest],
        )
      )[0]?.id;
    let id = await find();
    if (!id) {
      try {
        const { login } = await this.logins.create({
          userRef: `ClientApplication/${client.id}`,
          membershipId: membership.id,
          projectId: client.meta.project,
          clientId: client.id,
          profileRef: membership.profile.reference,
          scope: 'openid',
          authMethod: 'client_credentials',
          details: { secretDigest },
        });
        id = login.id;
      } catch {
        // Another instance created it first (unique index): use theirs.
        id = await find();
        if (!id) throw new Error('could not establish the client login');
      }
    }
    this.cache.set(key, id);
    return id;
  }
}
