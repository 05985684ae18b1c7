import { present } from '../admin/present.ts';
import type { AuthContext } from '../auth/access.ts';
import { BadRequest, Forbidden, Gone, NotFound } from '../errors/http-errors.ts';
import type { Resource } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import type { Queryable } from '../storage/db.ts';
import { type HistoryEntry, historyRelationOf, isUuid, relationOf } from '../storage/resources.ts';
import { assertMayRead, guardWrite } from './guards.ts';
import { type Operation, policyFor } from './policy.ts';
import { buildSearch } from './search.ts';

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** The FHIR interactions (read, vread, create, update, delete, history, search), project-scoped. */
/**
 * How an interaction runs inside a transaction bundle: on the transaction's connection, already
 * authorized (the policy is read before the transaction: PGlite holds one connection), with work
 * that must not run inside the transaction deferred until it commits.
 */
export interface InteractionContext {
  tx?: Queryable;
  authorized?: boolean;
  afterCommit?: (() => Promise<void>)[];
  /** Id assigned ahead (a transaction's `urn:uuid:` entries). */
  id?: string;
}

export class FhirRest {
  constructor(private readonly services: Services) {}

  /** Throws unless the caller may do `operation` on `resourceType` (type rules, policy, scopes). */
  async authorize(auth: AuthContext, resourceType: string, operation: Operation): Promise<void> {
    if (!RESOURCE_TYPE.test(resourceType))
      throw new NotFound(`Unknown resource type ${resourceType.slice(0, 64)}`);
    if (operation === 'read') assertMayRead(auth, resourceType);
    const policy = await policyFor(this.services, auth);
    if (!policy.allows(resourceType, operation)) {
      throw new Forbidden(`Access policy does not allow ${operation} of ${resourceType}`);
    }
  }

  /** A resource of the caller's project; another project's resource is indistinguishable from none. */
  private async load(auth: AuthContext, resourceType: string, id: string, tx?: Queryable): Promise<Resource> {
    const row = await this.services.repo.readRow<Resource>(resourceType, id, tx);
    // Another project's resource, deleted or not, is indistinguishable from one that never existed.
    if (!row || !this.visible(auth, row.resource))
      throw new NotFound(`${resourceType}/${id.slice(0, 64)} not found`);
    if (row.deleted) throw new Gone(`${resourceType}/${id} was deleted`);
    return row.resource;
  }

  private visible(auth: AuthContext, resource: Resource): boolean {
    if (resource.resourceType === 'Project') return resource.id === auth.project.id;
    return resource.meta.project === auth.project.id;
  }

  async read(
    auth: AuthContext,
    resourceType: string,
    id: string,
    ctx: InteractionContext = {},
  ): Promise<Resource> {
    if (!ctx.authorized) await this.authorize(auth, resourceType, 'read');
    return present(await this.load(auth, resourceType, id, ctx.tx));
  }

  async vread(auth: AuthContext, resourceType: string, id: string, versionId: string): Promise<Resource> {
    await this.authorize(auth, resourceType, 'read');
    const history = await this.history(auth, resourceType, id);
    const entry = history.find((h) => h.versionId === versionId);
    if (!entry?.resource)
      throw new NotFound(`${resourceType}/${id}/_history/${versionId.slice(0, 64)} not found`);
    return entry.resource;
  }

  async create(
    auth: AuthContext,
    resourceType: string,
    body: unknown,
    ctx: InteractionContext = {},
  ): Promise<Resource> {
    if (!ctx.authorized) await this.authorize(auth, resourceType, 'write');
    const incoming = this.checkBody(body, resourceType, undefined);
    const guarded = await guardWrite(this.services, auth, 'create', incoming, undefined);
    const { id: _ignored, meta: _meta, ...rest } = guarded as Resource;
    const created = await this.services.repo.create(
      { ...rest, resourceType, meta: { project: auth.project.id }, ...(ctx.id ? { id: ctx.id } : {}) },
      { tx: ctx.tx },
    );
    return present(created);
  }

  async update(
    auth: AuthContext,
    resourceType: string,
    id: string,
    body: unknown,
    ifMatch: string | undefined,
    ctx: InteractionContext = {},
  ): Promise<Resource> {
    if (!ctx.authorized) await this.authorize(auth, resourceType, 'write');
    const incoming = this.checkBody(body, resourceType, id);
    const stored = await this.load(auth, resourceType, id, ctx.tx);
    const guarded = (await guardWrite(this.services, auth, 'update', incoming, stored)) as Resource;
    const next = { ...guarded, resourceType, id, meta: { ...stored.meta } } as Resource;
    const updated = await this.services.repo.update(next, { ifMatch, tx: ctx.tx });
    await this.invalidate(updated);
    // Deactivating a membership ends its sessions at once (protocol.md §6).
    if (resourceType === 'ProjectMembership' && updated.active === false) {
      await this.later(ctx, () => this.services.logins.revokeByMembership(id));
    }
    return present(updated);
  }

  async delete(
    auth: AuthContext,
    resourceType: string,
    id: string,
    ctx: InteractionContext = {},
  ): Promise<void> {
    if (!ctx.authorized) await this.authorize(auth, resourceType, 'write');
    const stored = await this.load(auth, resourceType, id, ctx.tx);
    await guardWrite(this.services, auth, 'delete', undefined, stored);
    await this.services.repo.delete(resourceType, id, { tx: ctx.tx });
    await this.invalidate(stored);
    if (resourceType === 'ProjectMembership') {
      await this.later(ctx, () => this.services.logins.revokeByMembership(id));
    }
  }

  /** Runs now, or after the enclosing transaction commits. */
  private async later(ctx: InteractionContext, work: () => Promise<void>): Promise<void> {
    if (ctx.afterCommit) ctx.afterCommit.push(work);
    else await work();
  }

  async history(auth: AuthContext, resourceType: string, id: string): Promise<HistoryEntry[]> {
    await this.authorize(auth, resourceType, 'read');
    const entries = await this.services.repo.history(resourceType, id);
    const latest = entries.find((e) => e.resource)?.resource;
    if (entries.length === 0 || (latest && !this.visible(auth, latest)))
      throw new NotFound(`${resourceType}/${id} not found`);
    if (!latest) {
      const rows = await this.services.db.query<{ project_id: string | null }>(
        'SELECT project_id FROM resource WHERE id = $1',
        [id],
      );
      if (rows[0]?.project_id !== auth.project.id) throw new NotFound(`${resourceType}/${id} not found`);
    }
    return entries.map((e) => ({ ...e, resource: e.resource ? present(e.resource) : undefined }));
  }

  async typeHistory(auth: AuthContext, resourceType: string, count: number): Promise<HistoryEntry[]> {
    await this.authorize(auth, resourceType, 'read');
    const rows = await this.services.db.query<{
      id: string;
      content: Resource;
      version_id: string;
      last_updated: Date;
      deleted: boolean;
    }>(
      `SELECT id, content, version_id, last_updated, deleted FROM ${historyRelationOf(resourceType)}
       WHERE resource_type = $1 AND project_id = $2 ORDER BY last_updated DESC LIMIT $3`,
      [resourceType, auth.project.id, count],
    );
    return rows.map((r) => ({
      resourceType,
      id: r.id,
      versionId: r.version_id,
      lastUpdated: new Date(r.last_updated).toISOString(),
      deleted: r.deleted,
      resource: r.deleted ? undefined : present(r.content),
    }));
  }

  async search(
    auth: AuthContext,
    resourceType: string,
    query: Record<string, string | string[] | undefined>,
  ) {
    await this.authorize(auth, resourceType, 'read');
    const search = buildSearch(resourceType, auth.project.id, query);
    const rows = await this.services.db.query<{ content: Resource }>(
      `SELECT content FROM ${relationOf(resourceType)} WHERE ${search.where} ORDER BY ${search.orderBy} LIMIT ${search.count + 1} OFFSET ${search.offset}`,
      search.params,
    );
    const hasMore = rows.length > search.count;
    const resources = rows.slice(0, search.count).map((r) => present(r.content));
    let total: number | undefined;
    if (search.total === 'accurate') {
      if (!hasMore && (search.offset === 0 || resources.length > 0)) {
        total = search.offset + resources.length;
      } else {
        const counted = await this.services.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${relationOf(resourceType)} WHERE ${search.where}`,
          search.params,
        );
        total = counted[0]?.n;
      }
    }
    return { resources, total, hasMore, count: search.count, offset: search.offset };
  }

  /** resourceType/id consistency (FHIR R4 §3.1.0.4 / §3.1.0.5) and a JSON object body. */
  private checkBody(body: unknown, resourceType: string, id: string | undefined): Resource {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequest('The body must be a FHIR resource (a JSON object)');
    }
    const resource = body as Resource;
    if (resource.resourceType !== resourceType) {
      throw new BadRequest(`resourceType must be ${resourceType}`, 'resourceType');
    }
    if (id !== undefined && resource.id !== id)
      throw new BadRequest('The id in the body must match the URL', 'id');
    if (resource.id !== undefined && typeof resource.id !== 'string')
      throw new BadRequest('id must be a string', 'id');
    if (id !== undefined && !isUuid(id))
      throw new NotFound(`${resourceType}/${String(id).slice(0, 64)} not found`);
    return resource;
  }

  /** Cached views of memberships, clients and projects must hear of the change on every instance. */
  private async invalidate(resource: Resource): Promise<void> {
    const topics: Record<string, 'membership' | 'client' | 'project'> = {
      ProjectMembership: 'membership',
      ClientApplication: 'client',
      Project: 'project',
    };
    const topic = topics[resource.resourceType];
    if (topic) await this.services.bus.publish({ topic, id: resource.id });
  }
}
