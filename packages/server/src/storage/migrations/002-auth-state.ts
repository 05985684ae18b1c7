import type { Migration } from './index.ts';

/**
 * Server-side authentication state, kept in dedicated tables (not resources) because it is written
 * on hot paths and read by digest:
 * - `login`: one sign-in session (password, external IdP, token exchange, client credentials),
 *   carrying its single-use authorization code as a SHA-256 digest (protocol.md §1 "At rest").
 * - `refresh_token`: one row per issued refresh token (digest), chained by rotation; the successor
 *   pair of a rotated token is kept sealed for the reuse grace (protocol.md §5).
 * - `signing_key`: the server's JWT signing keys, private parts sealed with SECRET_KEY, shared by all
 *   instances.
 */
export const m002AuthState: Migration = {
  version: 2,
  name: 'auth-state',
  sql: `
    CREATE TABLE login (
      id uuid PRIMARY KEY,
      user_ref text NOT NULL,
      membership_id uuid,
      project_id uuid,
      client_id uuid,
      profile_ref text,
      scope text NOT NULL DEFAULT '',
      nonce text,
      code_challenge text,
      code_challenge_method text,
      redirect_uri text,
      code_digest text,
      code_expires_at timestamptz,
      code_redeemed_at timestamptz,
      auth_method text NOT NULL,
      auth_time timestamptz NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz,
      details jsonb
    );
    CREATE UNIQUE INDEX login_code_digest ON login (code_digest) WHERE code_digest IS NOT NULL;
    CREATE INDEX login_membership ON login (membership_id) WHERE revoked_at IS NULL;
    -- client_credentials: one long-lived login per client secret (protocol.md §5), shared by instances.
    CREATE UNIQUE INDEX login_client_credentials ON login (client_id, (details->>'secretDigest'))
      WHERE auth_method = 'client_credentials' AND revoked_at IS NULL;

    CREATE TABLE refresh_token (
      digest text PRIMARY KEY,
      login_id uuid NOT NULL REFERENCES login (id),
      client_id uuid,
      scope text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      rotated_at timestamptz,
      successor_sealed text
    );
    CREATE INDEX refresh_token_login ON refresh_token (login_id);

    CREATE TABLE signing_key (
      kid text PRIMARY KEY,
      alg text NOT NULL,
      public_jwk jsonb NOT NULL,
      private_sealed text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      retired_at timestamptz
    );
  `,
};
