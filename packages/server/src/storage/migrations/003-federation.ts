import type { Migration } from './index.ts';

/**
 * External identity providers:
 * - `external_identity`: the link (project, provider, subject) → membership. External subjects are
 *   keyed by provider (issuer, or the provider's own URL when it has no issuer), never by `sub`
 *   alone: two providers may issue the same `sub` (protocol.md §1, §3.4; RP-14, TX-25).
 * - `external_flow`: pending server-initiated sign-ins (protocol.md §3.2), looked up by the digest of
 *   their opaque `state`, bound to a browser cookie (digest), single use, 10 minutes.
 */
export const m003Federation: Migration = {
  version: 3,
  name: 'federation',
  sql: `
    CREATE TABLE external_identity (
      project_id uuid NOT NULL,
      provider text NOT NULL,
      subject text NOT NULL,
      membership_id uuid NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (project_id, provider, subject)
    );
    CREATE INDEX external_identity_membership ON external_identity (membership_id);

    CREATE TABLE external_flow (
      state_digest text PRIMARY KEY,
      cookie_digest text NOT NULL,
      client_id uuid NOT NULL,
      payload_sealed text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      consumed_at timestamptz
    );
    CREATE INDEX external_flow_expires ON external_flow (expires_at);
  `,
};
