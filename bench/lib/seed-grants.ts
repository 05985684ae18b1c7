/**
 * Seeds authorization codes and refresh tokens for the authorization_code and refresh cases, straight
 * into the server's database while it is stopped (PGlite is single-writer). Minting tens of thousands
 * of codes through the API would mean as many argon2id password checks — a bench of the password
 * hash, not of code redemption. Rows are written exactly as the server writes them (digests only).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { digest, randomSecret } from '../../packages/server/src/crypto/digest.ts';
import type { Db } from '../../packages/server/src/storage/db.ts';
import { createPgliteDb } from '../../packages/server/src/storage/pglite/index.ts';
import { createPostgresDb } from '../../packages/server/src/storage/postgres.ts';

export interface SeedInput {
  dataDir: string;
  databaseUrl: string | undefined;
  userRef: string;
  membershipId: string;
  projectId: string;
  profileRef: string;
  codeChallenge: string;
  count: number;
}

export interface Seeded {
  codes: string[];
  refreshTokens: string[];
}

const BATCH = 500;

async function insertBatches(
  db: Db,
  rows: unknown[][],
  sql: (placeholders: string) => string,
  width: number,
) {
  for (let i = 0; i < rows.length; i += BATCH) {
    const chunk = rows.slice(i, i + BATCH);
    const placeholders = chunk
      .map((_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`)
      .join(', ');
    await db.query(sql(placeholders), chunk.flat());
  }
}

export async function seedGrants(input: SeedInput): Promise<Seeded> {
  const db = input.databaseUrl
    ? createPostgresDb(input.databaseUrl, { max: 2 })
    : await createPgliteDb(join(input.dataDir, 'pglite'));
  try {
    const codes = Array.from({ length: input.count }, () => randomSecret(32));
    const expires = new Date(Date.now() + 2 * 3600_000).toISOString();
    await insertBatches(
      db,
      codes.map((code) => [
        randomUUID(),
        input.userRef,
        input.membershipId,
        input.projectId,
        input.profileRef,
        'openid offline_access',
        input.codeChallenge,
        'S256',
        digest(code),
        expires,
        'password',
      ]),
      (values) =>
        `INSERT INTO login (id, user_ref, membership_id, project_id, profile_ref, scope, code_challenge,
           code_challenge_method, code_digest, code_expires_at, auth_method, auth_time)
         SELECT v.id::uuid, v.user_ref, v.membership_id::uuid, v.project_id::uuid, v.profile_ref, v.scope,
           v.code_challenge, v.code_challenge_method, v.code_digest, v.code_expires_at::timestamptz,
           v.auth_method, now() FROM (VALUES ${values})
           AS v(id, user_ref, membership_id, project_id, profile_ref, scope, code_challenge, code_challenge_method,
           code_digest, code_expires_at, auth_method)`,
      11,
    );

    // One session whose many refresh tokens are each used once.
    const loginId = randomUUID();
    await db.query(
      `INSERT INTO login (id, user_ref, membership_id, project_id, profile_ref, scope, auth_method, auth_time)
       VALUES ($1, $2, $3, $4, $5, 'openid offline_access', 'password', now())`,
      [loginId, input.userRef, input.membershipId, input.projectId, input.profileRef],
    );
    const refreshTokens = Array.from({ length: input.count }, () => randomSecret(32));
    await insertBatches(
      db,
      refreshTokens.map((token) => [digest(token), loginId, 'openid offline_access', expires]),
      (values) =>
        `INSERT INTO refresh_token (digest, login_id, scope, expires_at, created_at)
         SELECT v.digest, v.login_id::uuid, v.scope, v.expires_at::timestamptz, now() FROM (VALUES ${values}) AS v(digest, login_id, scope, expires_at)`,
      4,
    );
    return { codes, refreshTokens };
  } finally {
    await db.close();
  }
}
