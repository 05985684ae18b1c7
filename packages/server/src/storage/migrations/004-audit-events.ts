import type { Migration } from './index.ts';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

/**
 * AuditEvents as compact rows (`audit_event`): typed columns instead of a JSONB document in
 * `resource`. An event is written for every token (protocol.md §1), and on the embedded engine the
 * ~900-byte JSONB row with its generic indexes cost about four times what this row costs
 * (docs/performance.md). The FHIR API reads them through the view `audit_event_resource`, which
 * has the columns of `resource` and renders the FHIR R4 AuditEvent (same shape as before), so
 * read, search, `_lastUpdated` and the project confinement work unchanged.
 *
 * AuditEvents are append-only (protocol.md §1): one version each, whose versionId is the event's
 * id and whose lastUpdated is when it was recorded. Existing events move over (their versionId
 * becomes their id).
 *
 * The view's codings: DICOM 110114 "User Authentication" (110112 "Query" for userinfo and
 * introspection) as `type`; the action in fedhir's own code system as the first `subtype`, then
 * DICOM 110122 "Login" or 110123 "Logout" where one applies (as IHE BALP uses them). A test renders
 * every action through this view (test/audit/audit-log.test.ts).
 */
export const m004AuditEvents: Migration = {
  version: 4,
  name: 'audit-events',
  sql: `
    CREATE TABLE audit_event (
      id uuid PRIMARY KEY,
      recorded timestamptz NOT NULL,
      project_id uuid,
      action text NOT NULL,
      outcome smallint NOT NULL CHECK (outcome IN (0, 4, 8)),
      reason text,
      ip text,
      user_id uuid,
      client_id uuid,
      login_id uuid
    );
    CREATE INDEX audit_event_project_recorded ON audit_event (project_id, recorded);

    CREATE VIEW audit_event_resource AS
    SELECT
      a.id,
      'AuditEvent'::text AS resource_type,
      a.project_id,
      a.id AS version_id,
      a.recorded AS last_updated,
      false AS deleted,
      jsonb_strip_nulls(jsonb_build_object(
        'resourceType', 'AuditEvent',
        'id', a.id,
        'meta', jsonb_build_object('versionId', a.id, 'lastUpdated', t.iso, 'project', a.project_id),
        'type', CASE WHEN a.action IN ('userinfo', 'introspect')
          THEN '{"system": "${DCM}", "code": "110112", "display": "Query"}'::jsonb
          ELSE '{"system": "${DCM}", "code": "110114", "display": "User Authentication"}'::jsonb END,
        'subtype', jsonb_build_array(
            jsonb_build_object('system', 'urn:fedhir:audit-action', 'code', a.action, 'display', a.action))
          || CASE
            WHEN a.action IN ('login', 'token', 'refresh', 'exchange', 'external-login', 'client-credentials')
              THEN '[{"system": "${DCM}", "code": "110122", "display": "Login"}]'::jsonb
            WHEN a.action IN ('revoke', 'logout')
              THEN '[{"system": "${DCM}", "code": "110123", "display": "Logout"}]'::jsonb
            ELSE '[]'::jsonb END,
        'action', 'E',
        'recorded', t.iso,
        'outcome', a.outcome::text,
        'outcomeDesc', a.reason,
        'agent', jsonb_build_array(jsonb_build_object(
            'who', CASE
              WHEN a.user_id IS NOT NULL THEN jsonb_build_object('reference', 'User/' || a.user_id)
              WHEN a.client_id IS NOT NULL THEN jsonb_build_object('reference', 'ClientApplication/' || a.client_id)
            END,
            'requestor', true,
            -- DICOM network access point type 2: an IP address.
            'network', CASE WHEN a.ip IS NOT NULL THEN jsonb_build_object('address', a.ip, 'type', '2') END))
          -- The application acting for the user: a second, non-requesting agent.
          || CASE WHEN a.user_id IS NOT NULL AND a.client_id IS NOT NULL
            THEN jsonb_build_array(jsonb_build_object(
              'who', jsonb_build_object('reference', 'ClientApplication/' || a.client_id), 'requestor', false))
            ELSE '[]'::jsonb END,
        -- security-source-type 4: Application Server.
        'source', '{"observer": {"display": "fedhir"}, "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]}'::jsonb,
        'entity', CASE WHEN a.login_id IS NOT NULL
          THEN jsonb_build_array(jsonb_build_object('what', jsonb_build_object('reference', 'Login/' || a.login_id)))
        END
      )) AS content
    FROM audit_event a
    CROSS JOIN LATERAL (
      SELECT to_char(a.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS iso
    ) t;

    INSERT INTO audit_event (id, recorded, project_id, action, outcome, reason, ip, user_id, client_id, login_id)
    SELECT
      r.id,
      (r.content->>'recorded')::timestamptz,
      r.project_id,
      r.content->'subtype'->0->>'code',
      (r.content->>'outcome')::smallint,
      r.content->>'outcomeDesc',
      r.content->'agent'->0->'network'->>'address',
      substring(r.content->'agent'->0->'who'->>'reference' FROM '^User/(.*)$')::uuid,
      COALESCE(
        substring(r.content->'agent'->0->'who'->>'reference' FROM '^ClientApplication/(.*)$'),
        substring(r.content->'agent'->1->'who'->>'reference' FROM '^ClientApplication/(.*)$'))::uuid,
      substring(r.content->'entity'->0->'what'->>'reference' FROM '^Login/(.*)$')::uuid
    FROM resource r
    WHERE r.resource_type = 'AuditEvent';
    DELETE FROM resource_history WHERE resource_type = 'AuditEvent';
    DELETE FROM resource WHERE resource_type = 'AuditEvent';
  `,
};
