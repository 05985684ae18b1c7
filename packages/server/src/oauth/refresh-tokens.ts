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

export type Rotation =
  | { outcome: 'rotated'; row: RefreshRow }
  /** Presented again after rotation: within the grace the same successor is answered, else the family is revoked. */
  | { outcome: 'reused'; row: RefreshRow }
  | { outcome: 'unknown' };

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

  /** The stored row of a token, rotated or not, without consuming it. */
  async find(token: string): Promise<RefreshRow | undefined> {
    if (token.length === 0 || token.length > 512) return undefined;
    const rows = await this.db.query<Row>('SELECT * FROM refresh_token WHERE digest = $1', [digest(token)]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async rotate(token: string): Promise<Rotation> {
    if (token.length === 0 || token.length > 512) return { outcome: 'unknown' };
    const tokenDigest = digest(token);
    const rows = await this.db.query<Row>(
      `UPDATE refresh_token SET rotated_at = now()
       WHERE digest = $1 AND rotated_at IS NULL AND expires_at > now()
       RETURNING *`,
      [tokenDigest],
    );
    if (rows[0]) return { outcome: 'rotated', row: fromRow(rows[0]) };
    const existing = await this.db.query<Row>('SELECT * FROM refresh_token WHERE digest = $1', [tokenDigest]);
    const row = existing[0];
    if (!row || row.rotated_at === null) return { outcome: 'unknown' };
    return { outcome: 'reused', row: fromRow(row) };
  }

  /** Keeps the sealed successor pair under the old token's digest, for the reuse grace. */
  async storeSuccessor(oldDigest: string, sealed: string): Promise<void> {
    await this.db.query('UPDATE refresh_token SET successor_sealed = $2 WHERE digest = $1', [
      oldDigest,
      sealed,
    ]);
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
