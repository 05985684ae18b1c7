import type { Migration } from './index.ts';

/**
 * Resources as JSONB with the columns lookups need. `resource` holds the current version of each
 * resource (a deleted one stays as a tombstone so that history and 410 answers work);
 * `resource_history` holds every version ever written.
 *
 * Uniqueness that the model promises is enforced by the database, so two instances writing at
 * once cannot both win: User e-mail per scope (a project, or the server for server-scoped users),
 * ProjectMembership.externalId per project, one DomainConfiguration per domain.
 */
export const m001Resources: Migration = {
  version: 1,
  name: 'resources',
  sql: `
    CREATE TABLE resource (
      id uuid PRIMARY KEY,
      resource_type text NOT NULL,
      project_id uuid,
      version_id uuid NOT NULL,
      last_updated timestamptz NOT NULL,
      deleted boolean NOT NULL DEFAULT false,
      content jsonb NOT NULL
    );
    CREATE INDEX resource_type_project_updated ON resource (resource_type, project_id, last_updated);

    CREATE TABLE resource_history (
      version_id uuid PRIMARY KEY,
      id uuid NOT NULL,
      resource_type text NOT NULL,
      project_id uuid,
      last_updated timestamptz NOT NULL,
      deleted boolean NOT NULL,
      content jsonb NOT NULL
    );
    CREATE INDEX resource_history_id ON resource_history (id, last_updated);
    CREATE INDEX resource_history_type ON resource_history (resource_type, project_id, last_updated);

    CREATE UNIQUE INDEX user_email_scope ON resource (
      (content->>'email'), COALESCE(project_id, '00000000-0000-0000-0000-000000000000'::uuid)
    ) WHERE resource_type = 'User' AND NOT deleted;

    CREATE UNIQUE INDEX membership_external_id ON resource (project_id, (content->>'externalId'))
      WHERE resource_type = 'ProjectMembership' AND NOT deleted AND content->>'externalId' IS NOT NULL;

    CREATE INDEX membership_user ON resource ((content->'user'->>'reference'))
      WHERE resource_type = 'ProjectMembership' AND NOT deleted;

    CREATE UNIQUE INDEX domain_configuration_domain ON resource ((content->>'domain'))
      WHERE resource_type = 'DomainConfiguration' AND NOT deleted;
  `,
};
