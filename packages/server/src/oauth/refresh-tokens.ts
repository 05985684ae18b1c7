import { digest, randomSecret } from '../crypto/digest.ts';
import { Batcher } from '../storage/batcher.ts';
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

interface NewRefreshRow {
  digest: string;
  login_id: string;
  client_id: string | null;
  scope: string;
  /** Seconds from now, unless `expires_at` (a rotation keeps its family's expiry). */
  lifetime: number;
  expires_at: string | null;
}

async function insertRefreshTokens(db: Queryable, rows: readonly NewRefreshRow[]): Promise<void> {
  await db.query(
    `INSERT INTO refresh_token (digest, login_id, client_id, scope, created_at, expires_at)
     SELECT digest, login_id, client_id, scope, now(),
       COALESCE(expires_at, now() + make_interval(secs => lifetime))
     FROM jsonb_to_recordset($1::jsonb) AS v(digest text, login_id uuid, client_id uuid, scope text,
       lifetime integer, expires_at timestamptz)`,
    [JSON.stringify(rows)],
  );
}

/** Tokens and their sessions by digest, in one query for many lookups. */
async function findByDigests(
  db: Queryable,
  digests: readonly string[],
): Promise<((Row & LoginJoin) | undefined)[]> {
  const rows = await db.query<Row & LoginJoin>(
    `SELECT r.*, l.user_ref, l.membership_id, l.nonce, l.auth_time, l.revoked_at AS login_revoked_at
     FROM refresh_token r JOIN login l ON l.id = r.login_id WHERE r.digest = ANY($1::text[])`,
    [[...new Set(digests)]],
  );
  const byDigest = new Map(rows.map((row) => [row.digest, row]));
  return digests.map((d) => byDigest.get(d));
}

interface Rotation {
  digest: string;
  successor_sealed: string | null;
  next_digest: string | null;
  next_client_id: string | null;
  next_scope: string;
  next_expires_at: string | null;
}

/**
 * Rotates many tokens in one statement. Each token's conditional UPDATE decides, across instances,
 * which of concurrent uses wins (RB-09); the same token twice in one batch is updated once, and
 * only the rotation whose index comes back won.
 */
async function rotate(db: Queryable, rotations: readonly Rotation[]): Promise<boolean[]> {
  const rows = await db.query<{ i: number }>(
    `WITH v AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(i integer, digest text, successor_sealed text,
         next_digest text, next_client_id uuid, next_scope text, next_expires_at timestamptz)
     ), rot AS (
       UPDATE refresh_token r SET rotated_at = now(), successor_sealed = v.successor_sealed
       FROM (SELECT DISTINCT ON (digest) * FROM v ORDER BY digest, i) v
       WHERE r.digest = v.digest AND r.rotated_at IS NULL AND r.expires_at > now()
       RETURNING v.i, r.login_id
     ), ins AS (
       INSERT INTO refresh_token (digest, login_id, client_id, scope, created_at, expires_at)
       SELECT v.next_digest, rot.login_id, v.next_client_id, v.next_scope, now(), v.next_expires_at
       FROM rot JOIN v ON v.i = rot.i WHERE v.next_digest IS NOT NULL
     )
     SELECT i FROM rot`,
    [JSON.stringify(rotations.map((rotation, index) => ({ ...rotation, i: index + 1 })))],
  );
  const won = new Set(rows.map((row) => Number(row.i)));
  return rotations.map((_, index) => won.has(index + 1));
}

/**
 * Opaque refresh tokens (protocol.md §5): 256 random bits, stored as a SHA-256 digest, rotated on
 * every use by one conditional UPDATE, so of N concurrent uses on any instances exactly one rotates.
 */
export class RefreshTokenStore {
  /** Concurrent refreshes and code redemptions share statements (storage/batcher.ts). */
  private readonly inserts: Batcher<NewRefreshRow, void>;
  private readonly lookups: Batcher<string, (Row & LoginJoin) | undefined>;
  private readonly rotations: Batcher<Rotation, boolean>;

  constructor(private readonly db: Db) {
    this.inserts = new Batcher(async (rows) => {
      await insertRefreshTokens(db, rows);
      return rows.map(() => undefined);
    });
    this.lookups = new Batcher((digests) => findByDigests(db, digests));
    this.rotations = new Batcher((rotations) => rotate(db, rotations));
  }

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
    const row: NewRefreshRow = {
      digest: digest(token),
      login_id: input.loginId,
      client_id: input.clientId ?? null,
      scope: input.scope,
      lifetime: input.lifetimeSeconds,
      expires_at: input.expiresAt?.toISOString() ?? null,
    };
    if (tx) await insertRefreshTokens(tx, [row]);
    else await this.inserts.submit(row);
    return token;
  }

  /**
   * The stored row of a token, rotated or not, without consuming it, with what a refresh needs of its
   * session (one round trip instead of three).
   */
  async find(token: string): Promise<RefreshLookup | undefined> {
    if (token.length === 0 || token.length > 512) return undefined;
    const row = await this.lookups.submit(digest(token));
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
    return this.rotations.submit({
      digest: digest(token),
      successor_sealed: sealedSuccessor ?? null,
      next_digest: next ? digest(next.token) : null,
      next_client_id: next?.clientId ?? null,
      next_scope: next?.scope ?? '',
      next_expires_at: next?.expiresAt.toISOString() ?? null,
    });
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
