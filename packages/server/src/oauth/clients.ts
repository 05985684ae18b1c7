import type { ClientApplication, ProjectMembership } from '../model/types.ts';
import type { InvalidationBus } from '../services/invalidation.ts';
import { TtlCache } from '../services/ttl-cache.ts';
import { isUuid, type ResourceRepository } from '../storage/resources.ts';

/** A ClientApplication as stored: the secret only as digests (protocol.md §1 "At rest"). */
export interface StoredClient extends ClientApplication {
  secretDigest?: string;
  retiringSecretDigest?: string;
  /** ISO time after which the retiring secret stops working (24 h after rotation). */
  retiringSecretExpires?: string;
}

const TTL_MS = 5_000;

/**
 * ClientApplications and their own memberships, cached ≤ 5 s and dropped on invalidation: the
 * token endpoint reads them on every request and must not pay a database round trip for it.
 */
export class ClientStore {
  private readonly clients = new TtlCache<StoredClient | null>(TTL_MS, 20_000);
  private readonly memberships = new TtlCache<ProjectMembership | null>(TTL_MS, 20_000);

  constructor(
    private readonly repo: ResourceRepository,
    private readonly bus: InvalidationBus,
  ) {
    bus.subscribe((event) => {
      if (event.topic === 'client') {
        this.clients.delete(event.id);
        this.memberships.delete(event.id);
      }
    });
  }

  async get(id: string): Promise<StoredClient | undefined> {
    if (!isUuid(id)) return undefined;
    const cached = this.clients.get(id);
    if (cached !== undefined) return cached ?? undefined;
    const client = await this.repo.read<StoredClient>('ClientApplication', id);
    this.clients.set(id, client ?? null);
    return client;
  }

  /** The membership through which the client acts under client_credentials. */
  async ownMembership(client: StoredClient): Promise<ProjectMembership | undefined> {
    const cached = this.memberships.get(client.id);
    if (cached !== undefined) return cached ?? undefined;
    const [membership] = await this.repo.findMemberships(
      `ClientApplication/${client.id}`,
      client.meta.project,
    );
    this.memberships.set(client.id, membership ?? null);
    return membership;
  }

  /** Tells every instance that a client changed (secret rotated, settings edited). */
  changed(id: string): Promise<void> {
    return this.bus.publish({ topic: 'client', id });
  }
}

/** The client's project id (its `meta.project`). */
export function clientProjectId(client: ClientApplication): string {
  return client.meta.project ?? '';
}
