import { randomUUID } from 'node:crypto';
import { Conflict, Gone, NotFound, PreconditionFailed } from '../errors/http-errors.ts';
import type { NewResource, ProjectMembership, Resource, User } from '../model/types.ts';
import { type Db, PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode, type Queryable } from './db.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** Messages for the uniqueness the schema enforces (migration 001). */
const UNIQUE_MESSAGES: Record<string, { message: string; expression: string }> = {
  user_email_scope: { message: 'A user with this email already exists', expression: 'User.email' },
  membership_external_id: {
    message: 'This externalId is already used in this project',
    expression: 'ProjectMembership.externalId',
  },
  domain_configuration_domain: {
    message: 'This domain already has a configuration',
    expression: 'DomainConfiguration.domain',
  },
  resource_pkey: { message: 'A resource with this id already exists', expression: 'id' },
  audit_event_pkey: { message: 'An audit event with this id already exists', expression: 'id' },
};

/** A unique violation the schema enforces → 409 Conflict naming the expression; anything else as is. */
export function translateWriteError(err: unknown): never {
  if (pgErrorCode(err) === PG_UNIQUE_VIOLATION) {
    const known = UNIQUE_MESSAGES[pgConstraint(err) ?? ''];
    throw new Conflict(known?.message ?? 'Duplicate resource', known?.expression);
  }
  throw err;
}

/**
 * The relation holding a type's current versions, with the columns of `resource`. AuditEvents live
 * in their own compact table, read through a view that renders them (migration 004).
 */
export function relationOf(resourceType: string): 'resource' | 'audit_event_resource' {
  return resourceType === 'AuditEvent' ? 'audit_event_resource' : 'resource';
}

/** The relation holding every version of a type: an AuditEvent's one version is its current row. */
export function historyRelationOf(resourceType: string): 'resource_history' | 'audit_event_resource' {
  return resourceType === 'AuditEvent' ? 'audit_event_resource' : 'resource_history';
}

export interface WriteOptions {
  /** Run inside this transaction instead of on its own. */
  tx?: Queryable;
  /** `meta.versionId` the caller last read (If-Match); a mismatch answers 412. */
  ifMatch?: string;
}

export interface HistoryEntry {
  resource: Resource | undefined;
  versionId: string;
  lastUpdated: string;
  deleted: boolean;
  resourceType: string;
  id: string;
}

/**
 * Versioned storage of every resource. Each write is one SQL statement that changes the current
 * row and appends the history row together (a data-modifying CTE), so a write is atomic without an
 * explicit transaction and costs one round trip.
 */
export class ResourceRepository {
  constructor(private readonly db: Db) {}

  private q(tx?: Queryable): Queryable {
    return tx ?? this.db;
  }

  /** Creates a resource. `project` (meta.project) is the owning Project's id, when project-owned. */
  async create<T extends Resource>(input: NewResource<T>, options: WriteOptions = {}): Promise<T> {
    const id = input.id && isUuid(input.id) ? input.id : randomUUID();
    const meta = { versionId: randomUUID(), lastUpdated: new Date().toISOString() } as T['meta'];
    const project = input.meta?.project;
    if (project) meta.project = project;
    const resource = { ...input, id, meta } as unknown as T;
    try {
      await this.q(options.tx).query(
        `WITH r AS (
           INSERT INTO resource (id, resource_type, project_id, version_id, last_updated, deleted, content)
           VALUES ($1, $2, $3, $4, $5, false, $6::jsonb)
           RETURNING id, resource_type, project_id, version_id, last_updated, deleted, content
         )
         INSERT INTO resource_history (version_id, id, resource_type, project_id, last_updated, deleted, content)
         SELECT version_id, id, resource_type, project_id, last_updated, deleted, content FROM r`,
        [
          id,
          resource.resourceType,
          project ?? null,
          meta.versionId,
          meta.lastUpdated,
          JSON.stringify(resource),
        ],
      );
    } catch (err) {
      translateWriteError(err);
    }
    return resource;
  }

  /**
   * Creates several resources with the semantics of {@link create} (ids kept when they are UUIDs,
   * fresh versions, `meta.project`), in ONE statement: every current row and its history row are
   * inserted together, so the batch is all-or-nothing and costs one round trip. Used by batched
   * writers (the audit log) where one statement per row would put the database on the hot path.
   */
  /** The current version, or undefined when it does not exist or is deleted. */
  async read<T extends Resource>(resourceType: string, id: string, tx?: Queryable): Promise<T | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await this.q(tx).query<{ content: T }>(
      `SELECT content FROM ${relationOf(resourceType)} WHERE id = $1 AND resource_type = $2 AND NOT deleted`,
      [id, resourceType],
    );
    return rows[0]?.content;
  }

  /** Several current resources in one query (missing or deleted ones are simply absent). */
  async readMany<T extends Resource>(
    refs: readonly { resourceType: string; id: string }[],
    tx?: Queryable,
  ): Promise<T[]> {
    const valid = refs.filter((r) => isUuid(r.id));
    if (valid.length === 0) return [];
    const rows = await this.q(tx).query<{ content: T }>(
      'SELECT content FROM resource WHERE id = ANY($1::uuid[]) AND NOT deleted',
      [valid.map((r) => r.id)],
    );
    return rows
      .map((r) => r.content)
      .filter((c) => valid.some((r) => r.id === c.id && r.resourceType === c.resourceType));
  }

  /** The current row, deleted or not (callers decide what a tombstone may reveal). */
  async readRow<T extends Resource>(
    resourceType: string,
    id: string,
    tx?: Queryable,
  ): Promise<{ resource: T; deleted: boolean } | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await this.q(tx).query<{ content: T; deleted: boolean }>(
      `SELECT content, deleted FROM ${relationOf(resourceType)} WHERE id = $1 AND resource_type = $2`,
      [id, resourceType],
    );
    return rows[0] ? { resource: rows[0].content, deleted: rows[0].deleted } : undefined;
  }

  /** Like {@link read}, but answers 404 for a missing resource and 410 for a deleted one. */
  async readOrThrow<T extends Resource>(resourceType: string, id: string, tx?: Queryable): Promise<T> {
    if (!isUuid(id)) throw new NotFound(`${resourceType}/${id} not found`);
    const rows = await this.q(tx).query<{ content: T; deleted: boolean }>(
      `SELECT content, deleted FROM ${relationOf(resourceType)} WHERE id = $1 AND resource_type = $2`,
      [id, resourceType],
    );
    const row = rows[0];
    if (!row) throw new NotFound(`${resourceType}/${id} not found`);
    if (row.deleted) throw new Gone(`${resourceType}/${id} was deleted`);
    return row.content;
  }

  /** Writes a new version. With `ifMatch`, answers 412 when another write came first. */
  async update<T extends Resource>(resource: T, options: WriteOptions = {}): Promise<T> {
    if (!isUuid(resource.id)) throw new NotFound(`${resource.resourceType}/${resource.id} not found`);
    if (options.ifMatch !== undefined && !isUuid(options.ifMatch)) {
      throw new PreconditionFailed('If-Match does not name a version of this resource');
    }
    const meta = { ...resource.meta, versionId: randomUUID(), lastUpdated: new Date().toISOString() };
    const next = { ...resource, meta } as T;
    let rows: { version_id: string }[];
    try {
      rows = await this.q(options.tx).query<{ version_id: string }>(
        `WITH r AS (
           UPDATE resource SET version_id = $3, last_updated = $4, content = $5::jsonb, project_id = $6
           WHERE id = $1 AND resource_type = $2 AND NOT deleted AND ($7::uuid IS NULL OR version_id = $7::uuid)
           RETURNING id, resource_type, project_id, version_id, last_updated, deleted, content
         )
         INSERT INTO resource_history (version_id, id, resource_type, project_id, last_updated, deleted, content)
         SELECT version_id, id, resource_type, project_id, last_updated, deleted, content FROM r
         RETURNING version_id`,
        [
          resource.id,
          resource.resourceType,
          meta.versionId,
          meta.lastUpdated,
          JSON.stringify(next),
          meta.project ?? null,
          options.ifMatch ?? null,
        ],
      );
    } catch (err) {
      translateWriteError(err);
    }
    if (rows.length === 0) {
      await this.readOrThrow(resource.resourceType, resource.id, options.tx);
      throw new PreconditionFailed(`${resource.resourceType}/${resource.id} was changed by another request`);
    }
    return next;
  }

  /** Deletes (a tombstone stays, and a history entry records the deletion). */
  async delete(resourceType: string, id: string, options: WriteOptions = {}): Promise<void> {
    if (!isUuid(id)) throw new NotFound(`${resourceType}/${id} not found`);
    const rows = await this.q(options.tx).query<{ version_id: string }>(
      `WITH r AS (
         UPDATE resource SET deleted = true, version_id = $3, last_updated = $4
         WHERE id = $1 AND resource_type = $2 AND NOT deleted
         RETURNING id, resource_type, project_id, version_id, last_updated, deleted, content
       )
       INSERT INTO resource_history (version_id, id, resource_type, project_id, last_updated, deleted, content)
       SELECT version_id, id, resource_type, project_id, last_updated, deleted, content FROM r
       RETURNING version_id`,
      [id, resourceType, randomUUID(), new Date().toISOString()],
    );
    if (rows.length === 0) await this.readOrThrow(resourceType, id, options.tx);
  }

  /** Every version of one resource, newest first. */
  async history(resourceType: string, id: string, tx?: Queryable): Promise<HistoryEntry[]> {
    if (!isUuid(id)) return [];
    const rows = await this.q(tx).query<{
      content: Resource;
      version_id: string;
      last_updated: Date;
      deleted: boolean;
    }>(
      `SELECT content, version_id, last_updated, deleted FROM ${historyRelationOf(resourceType)}
       WHERE id = $1 AND resource_type = $2 ORDER BY last_updated DESC, version_id`,
      [id, resourceType],
    );
    return rows.map((r) => ({
      resource: r.deleted ? undefined : r.content,
      versionId: r.version_id,
      lastUpdated: new Date(r.last_updated).toISOString(),
      deleted: r.deleted,
      resourceType,
      id,
    }));
  }

  /** A User by normalised e-mail: project-scoped in `projectId` first, then server-scoped. */
  async findUserByEmail(email: string, projectId?: string, tx?: Queryable): Promise<User | undefined> {
    const rows = await this.q(tx).query<{ content: User }>(
      `SELECT content FROM resource
       WHERE resource_type = 'User' AND NOT deleted AND content->>'email' = $1
         AND (project_id IS NULL OR project_id = $2::uuid)
       ORDER BY project_id NULLS LAST LIMIT 1`,
      [email, projectId && isUuid(projectId) ? projectId : null],
    );
    return rows[0]?.content;
  }

  /** Every User with this e-mail, in any scope (password sign-in without a project). */
  async findUsersByEmail(email: string, tx?: Queryable): Promise<User[]> {
    const rows = await this.q(tx).query<{ content: User }>(
      `SELECT content FROM resource WHERE resource_type = 'User' AND NOT deleted AND content->>'email' = $1`,
      [email],
    );
    return rows.map((r) => r.content);
  }

  /** The memberships of a User (or ClientApplication), optionally in one project. */
  async findMemberships(
    userReference: string,
    projectId?: string,
    tx?: Queryable,
  ): Promise<ProjectMembership[]> {
    const rows = await this.q(tx).query<{ content: ProjectMembership }>(
      `SELECT content FROM resource
       WHERE resource_type = 'ProjectMembership' AND NOT deleted
         AND content->'user'->>'reference' = $1 AND ($2::uuid IS NULL OR project_id = $2::uuid)
       ORDER BY last_updated`,
      [userReference, projectId && isUuid(projectId) ? projectId : null],
    );
    return rows.map((r) => r.content);
  }

  async findMembershipByExternalId(
    projectId: string,
    externalId: string,
    tx?: Queryable,
  ): Promise<ProjectMembership | undefined> {
    if (!isUuid(projectId)) return undefined;
    const rows = await this.q(tx).query<{ content: ProjectMembership }>(
      `SELECT content FROM resource
       WHERE resource_type = 'ProjectMembership' AND NOT deleted AND project_id = $1 AND content->>'externalId' = $2`,
      [projectId, externalId],
    );
    return rows[0]?.content;
  }

  /** The first resource of a type matching a top-level JSON field (small admin lookups). */
  async findOneByField<T extends Resource>(
    resourceType: string,
    field: string,
    value: string | boolean,
    tx?: Queryable,
  ): Promise<T | undefined> {
    const rows = await this.q(tx).query<{ content: T }>(
      `SELECT content FROM resource WHERE resource_type = $1 AND NOT deleted AND content->$2 = $3::jsonb
       ORDER BY last_updated LIMIT 1`,
      [resourceType, field, JSON.stringify(value)],
    );
    return rows[0]?.content;
  }
}
