import { digest, randomSecret } from '../crypto/digest.ts';
import type { Db, Queryable } from '../storage/db.ts';

export interface RefreshRow {
  digest: string;
  loginId: string;
  clientId: string | undefined;
  scope: string;
  expiresAt: Date;
  rotatedAt: Date | undefined;
  successorSealed: string | undefined;
}

interface Row {
  digest: string;
  login_id: string;
  client_id: string | null;
  scope: string;
  expires_at: Date;
  rotated_at: Date | null;
  successor_sealed: string | null;
}

function fromRow(row: Row): RefreshRow {
  return {
    digest: row.digest,
    loginId: row.login_id,
    clientId: row.client_id ?? undefined,
    scope: row.scope,
    expiresAt: new Date(row.expires_at),
    rotatedAt: row.rotated_at ? new Date(row.rotated_at) : undefined,
    successorSealed: row.successor_sealed ?? undefined,
  };
}

interface LoginJoin {
  user_ref: string;
  membership_id: string | null;
  nonce: string | null;
  auth_time: Date;
  login_revoked_at: Date | null;
}

export interface RefreshLookup extends RefreshRow {
  login: {
    userRef: string;
    membershipId: string | undefined;
    nonce: string | undefined;
    authTime: Date;
    revoked: boolean;
  };
}

/**
 * Opaque refresh tokens (protocol.md §5): 256 random bits, stored as a SHA-256 digest, rotated on
 * every use by one conditional UPDATE, so of N concurrent uses on any instances exactly one rotates.
 */
export class RefreshTokenStore {
  constructor(private readonly db: Db) {}

  /**
   * Issues a refresh token. `expiresAt` (a rotation) keeps the family's absolute expiry: rotating
   * never extends a session (ASVS 10.4.8, OP-34); otherwise it expires `lifetimeSeconds` from now.
   */
  async issue(
    input: {
      loginId: string;
      clientId: string | undefined;
      scope: string;
      lifetimeSeconds: number;
      expiresAt?: Date | undefined;
    },
    tx?: Queryable,
  ): Promise<string> {
    const token = randomSecret(32);
    await (tx ?? this.db).query(
      `INSERT INTO refresh_token (digest, login_id, client_id, scope, created_at, expires_at)
       VALUES ($1, $2, $3, $4, now(), COALESCE($6::timestamptz, now() + make_interval(secs => $5)))`,
      [
        digest(token),
        input.loginId,
        input.clientId ?? null,
        input.scope,
        input.lifetimeSeconds,
        input.expiresAt?.toISOString() ?? null,
      ],
    );
    return token;
  }

  /**
   * The stored row of a token, rotated or not, without consuming it, with what a refresh needs of its
   * session (one round trip instead of three).
   */
  async find(token: string): Promise<RefreshLookup | undefined> {
    if (token.length === 0 || token.length > 512) return undefined;
    const rows = await this.db.query<Row & LoginJoin>(
      `SELECT r.*, l.user_ref, l.membership_id, l.nonce, l.auth_time, l.revoked_at AS login_revoked_at
       FROM refresh_token r JOIN login l ON l.id = r.login_id WHERE r.digest = $1`,
      [digest(token)],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      ...fromRow(row),
      login: {
        userRef: row.user_ref,
        membershipId: row.membership_id ?? undefined,
        nonce: row.nonce ?? undefined,
        authTime: new Date(row.auth_time),
        revoked: row.login_revoked_at !== null,
      },
    };
  }

  /**
   * Rotates `token` to its successor in one statement: the conditional UPDATE decides, across
   * instances, which of concurrent uses wins (RB-09), and the winner's successor row and sealed pair
   * are written with it. Answers false when another use rotated it first.
   */
  async rotateTo(
    token: string,
    next:
      | { token: string; loginId: string; clientId: string | undefined; scope: string; expiresAt: Date }
      | undefined,
    sealedSuccessor: string | undefined,
  ): Promise<boolean> {
    const rows = await this.db.query<{ n: number }>(
      `WITH rot AS (
         UPDATE refresh_token SET rotated_at = now(), successor_sealed = $2
         WHERE digest = $1 AND rotated_at IS NULL AND expires_at > now()
         RETURNING login_id
       ), ins AS (
         INSERT INTO refresh_token (digest, login_id, client_id, scope, created_at, expires_at)
         SELECT $3, login_id, $4, $5, now(), $6::timestamptz FROM rot WHERE $3::text IS NOT NULL
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM rot)::int AS n`,
      [
        digest(token),
        sealedSuccessor ?? null,
        next ? digest(next.token) : null,
        next?.clientId ?? null,
        next?.scope ?? '',
        next?.expiresAt.toISOString() ?? null,
      ],
    );
    return rows[0]?.n === 1;
  }

  /**
   * The successor of a rotated token. A concurrent caller may arrive between the rotation and the
   * storing of its successor: poll briefly (bounded) rather than fork the family (RB-09).
   */
  async successor(oldDigest: string, waitMs = 3_000): Promise<string | undefined> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const rows = await this.db.query<{ successor_sealed: string | null }>(
        'SELECT successor_sealed FROM refresh_token WHERE digest = $1',
        [oldDigest],
      );
      const sealed = rows[0]?.successor_sealed;
      if (sealed) return sealed;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Forgets successors whose grace has passed (they are secrets: keep them no longer than needed). */
  async purgeSuccessors(olderThanSeconds: number): Promise<void> {
    await this.db.query(
      `UPDATE refresh_token SET successor_sealed = NULL
       WHERE successor_sealed IS NOT NULL AND rotated_at < now() - make_interval(secs => $1)`,
      [olderThanSeconds],
    );
  }
}
