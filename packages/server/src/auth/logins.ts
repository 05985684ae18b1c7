import { digest, randomSecret } from '../crypto/digest.ts';
import type { InvalidationBus } from '../services/invalidation.ts';
import { TtlCache } from '../services/ttl-cache.ts';
import { Batcher } from '../storage/batcher.ts';
import type { Db, Queryable } from '../storage/db.ts';
import { timeOrderedId } from '../storage/ids.ts';
import { isUuid } from '../storage/resources.ts';

export type AuthMethod = 'password' | 'external' | 'exchange' | 'client_credentials';

/** A sign-in session and its pending authorization code (protocol.md §1 "Login"). */
export interface LoginRecord {
  id: string;
  /** `User/<id>` or `ClientApplication/<id>`. */
  userRef: string;
  membershipId: string | undefined;
  projectId: string | undefined;
  /** The ClientApplication the login was started for, if any. */
  clientId: string | undefined;
  profileRef: string | undefined;
  scope: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  redirectUri: string | undefined;
  authMethod: AuthMethod;
  authTime: Date;
  revokedAt: Date | undefined;
  /** Whether an authorization code was ever issued for this login. */
  hadCode: boolean;
  codeRedeemedAt: Date | undefined;
  codeExpiresAt: Date | undefined;
  details: Record<string, unknown> | undefined;
}

interface LoginRow {
  id: string;
  user_ref: string;
  membership_id: string | null;
  project_id: string | null;
  client_id: string | null;
  profile_ref: string | null;
  scope: string;
  nonce: string | null;
  code_challenge: string | null;
  code_challenge_method: string | null;
  redirect_uri: string | null;
  code_digest: string | null;
  code_expires_at: Date | null;
  code_redeemed_at: Date | null;
  auth_method: AuthMethod;
  auth_time: Date;
  revoked_at: Date | null;
  details: Record<string, unknown> | null;
}

const date = (v: Date | string | null) => (v === null ? undefined : new Date(v));

function fromRow(row: LoginRow): LoginRecord {
  return {
    id: row.id,
    userRef: row.user_ref,
    membershipId: row.membership_id ?? undefined,
    projectId: row.project_id ?? undefined,
    clientId: row.client_id ?? undefined,
    profileRef: row.profile_ref ?? undefined,
    scope: row.scope,
    nonce: row.nonce ?? undefined,
    codeChallenge: row.code_challenge ?? undefined,
    codeChallengeMethod: row.code_challenge_method ?? undefined,
    redirectUri: row.redirect_uri ?? undefined,
    authMethod: row.auth_method,
    authTime: new Date(row.auth_time),
    revokedAt: date(row.revoked_at),
    hadCode: row.code_digest !== null,
    codeRedeemedAt: date(row.code_redeemed_at),
    codeExpiresAt: date(row.code_expires_at),
    details: row.details ?? undefined,
  };
}

export interface NewLogin {
  userRef: string;
  membershipId?: string;
  projectId?: string;
  clientId?: string;
  profileRef?: string;
  scope: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
  redirectUri?: string;
  authMethod: AuthMethod;
  details?: Record<string, unknown>;
}

export interface NewLoginRefresh {
  token: string;
  clientId: string | undefined;
  scope: string;
  lifetimeSeconds: number;
}

/** A login row as written, with the refresh token (if any) that the same statement writes. */
interface LoginInsert extends LoginRow {
  refresh_digest: string | null;
  refresh_client_id: string | null;
  refresh_scope: string;
  refresh_lifetime: number;
}

/**
 * Writes logins, and the refresh tokens issued with them, in one statement whatever their number:
 * the rows travel as one JSON parameter (jsonb_to_recordset) instead of 19 bound values each. The
 * refresh tokens' foreign key is checked at the end of the statement, when their logins exist.
 */
async function insertLogins(db: Queryable, rows: readonly LoginInsert[]): Promise<void> {
  await db.query(
    `WITH v AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, user_ref text, membership_id uuid,
         project_id uuid, client_id uuid, profile_ref text, scope text, nonce text, code_challenge text,
         code_challenge_method text, redirect_uri text, code_digest text, code_expires_at timestamptz,
         auth_method text, auth_time timestamptz, details jsonb, refresh_digest text,
         refresh_client_id uuid, refresh_scope text, refresh_lifetime integer)
     ), l AS (
       INSERT INTO login (id, user_ref, membership_id, project_id, client_id, profile_ref, scope, nonce,
         code_challenge, code_challenge_method, redirect_uri, code_digest, code_expires_at, auth_method,
         auth_time, details)
       SELECT id, user_ref, membership_id, project_id, client_id, profile_ref, scope, nonce,
         code_challenge, code_challenge_method, redirect_uri, code_digest, code_expires_at, auth_method,
         auth_time, details
       FROM v
     )
     INSERT INTO refresh_token (digest, login_id, client_id, scope, created_at, expires_at)
     SELECT refresh_digest, id, refresh_client_id, refresh_scope, now(),
       now() + make_interval(secs => refresh_lifetime)
     FROM v WHERE refresh_digest IS NOT NULL`,
    [JSON.stringify(rows)],
  );
}

/**
 * Redeems codes by digest in one conditional UPDATE: a code matches only while unredeemed, unexpired
 * and not revoked, so of N concurrent redemptions on any number of instances exactly one gets the
 * row (RB-08). The same code twice in one batch matches once: only its first caller gets the row;
 * the others answer undefined and find it redeemed.
 */
async function redeemCodes(db: Queryable, digests: readonly string[]): Promise<(LoginRow | undefined)[]> {
  const rows = await db.query<LoginRow>(
    `UPDATE login SET code_redeemed_at = now()
     WHERE code_digest = ANY($1::text[]) AND code_redeemed_at IS NULL AND code_expires_at > now()
       AND revoked_at IS NULL
     RETURNING *`,
    [[...new Set(digests)]],
  );
  const byDigest = new Map(rows.map((row) => [row.code_digest, row]));
  return digests.map((d) => {
    const row = byDigest.get(d);
    byDigest.delete(d);
    return row;
  });
}

/** Authorization codes live 5 minutes (protocol.md §5; RFC 6749 §4.1.2 recommends ≤ 10). */
export const CODE_LIFETIME_SECONDS = 300;

export type CodeRedemption =
  | { outcome: 'ok'; login: LoginRecord }
  /** Redeemed before: the caller must revoke what the first redemption issued (RFC 6749 §4.1.2). */
  | { outcome: 'reused'; login: LoginRecord }
  | { outcome: 'expired' | 'unknown' };

/** What a bearer check needs of a live login. */
export interface LiveLogin {
  id: string;
  userRef: string;
  membershipId: string | undefined;
  clientId: string | undefined;
  scope: string;
}

function liveOf(login: LoginRecord): LiveLogin {
  return {
    id: login.id,
    userRef: login.userRef,
    membershipId: login.membershipId,
    clientId: login.clientId,
    scope: login.scope,
  };
}

/** How long another instance may keep believing a login is live after it was revoked, without Redis. */
const STATE_TTL_MS = 5_000;

/**
 * Logins in PostgreSQL, the source of truth for revocation. `isActive` answers from a short-lived
 * cache that revocations on this instance clear at once and that Redis pub/sub clears on the others.
 */
export class LoginStore {
  private readonly stateCache = new TtlCache<LiveLogin | null>(STATE_TTL_MS, 100_000);
  /** Concurrent sign-ins and exchanges share one INSERT (storage/batcher.ts). */
  private readonly inserts: Batcher<LoginInsert, void>;
  /** Concurrent code redemptions share one conditional UPDATE. */
  private readonly redemptions: Batcher<string, LoginRow | undefined>;

  constructor(
    private readonly db: Db,
    private readonly bus: InvalidationBus,
  ) {
    this.inserts = new Batcher(async (rows) => {
      await insertLogins(db, rows);
      return rows.map(() => undefined);
    });
    this.redemptions = new Batcher((digests) => redeemCodes(db, digests));
    bus.subscribe((event) => {
      if (event.topic === 'login') this.stateCache.set(event.id, null);
    });
  }

  /** Creates a login; with `withCode`, also a single-use authorization code (answered once). */
  async create(
    input: NewLogin,
    options: {
      withCode?: boolean;
      tx?: Queryable;
      /** Use this id (tokens already signed for it). */
      id?: string;
      /** A refresh token of this login, written in the same statement (one round trip). */
      refresh?: NewLoginRefresh;
    } = {},
  ): Promise<{ login: LoginRecord; code: string | undefined }> {
    const code = options.withCode ? randomSecret(32) : undefined;
    const row: LoginInsert = {
      id: options.id ?? timeOrderedId(),
      user_ref: input.userRef,
      membership_id: input.membershipId ?? null,
      project_id: input.projectId ?? null,
      client_id: input.clientId ?? null,
      profile_ref: input.profileRef ?? null,
      scope: input.scope,
      nonce: input.nonce ?? null,
      code_challenge: input.codeChallenge ?? null,
      code_challenge_method: input.codeChallengeMethod ?? null,
      redirect_uri: input.redirectUri ?? null,
      code_digest: code ? digest(code) : null,
      code_expires_at: code ? new Date(Date.now() + CODE_LIFETIME_SECONDS * 1000) : null,
      code_redeemed_at: null,
      auth_method: input.authMethod,
      // The record answered is built from what was written, so the time is chosen here, not by now().
      auth_time: new Date(),
      revoked_at: null,
      details: input.details ?? null,
      refresh_digest: options.refresh ? digest(options.refresh.token) : null,
      refresh_client_id: options.refresh?.clientId ?? null,
      refresh_scope: options.refresh?.scope ?? '',
      refresh_lifetime: options.refresh?.lifetimeSeconds ?? 0,
    };
    if (options.tx) await insertLogins(options.tx, [row]);
    else await this.inserts.submit(row);
    return { login: fromRow(row), code };
  }

  async get(id: string, tx?: Queryable): Promise<LoginRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await (tx ?? this.db).query<LoginRow>('SELECT * FROM login WHERE id = $1', [id]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  /**
   * Completes a login whose membership was chosen later (/auth/profile) and issues its code.
   * Only a login without a code, not revoked, can be completed.
   */
  async chooseMembership(
    id: string,
    membership: { membershipId: string; projectId: string; profileRef: string },
  ): Promise<string | undefined> {
    const code = randomSecret(32);
    const rows = await this.db.query<{ id: string }>(
      `UPDATE login SET membership_id = $2, project_id = $3, profile_ref = $4, code_digest = $5,
         code_expires_at = $6
       WHERE id = $1 AND code_digest IS NULL AND revoked_at IS NULL AND membership_id IS NULL
         AND created_at > now() - interval '10 minutes'
       RETURNING id`,
      [
        id,
        membership.membershipId,
        membership.projectId,
        membership.profileRef,
        digest(code),
        new Date(Date.now() + CODE_LIFETIME_SECONDS * 1000).toISOString(),
      ],
    );
    return rows.length === 1 ? code : undefined;
  }

  /**
   * Redeems a code atomically: of N concurrent redemptions on any number of instances, exactly one
   * conditional UPDATE matches (RB-08); the others learn the code was used.
   */
  async redeemCode(code: string): Promise<CodeRedemption> {
    if (code.length === 0 || code.length > 512) return { outcome: 'unknown' };
    const codeDigest = digest(code);
    const redeemed = await this.redemptions.submit(codeDigest);
    if (redeemed) return { outcome: 'ok', login: fromRow(redeemed) };
    const existing = await this.db.query<LoginRow>('SELECT * FROM login WHERE code_digest = $1', [
      codeDigest,
    ]);
    const row = existing[0];
    if (!row) return { outcome: 'unknown' };
    if (row.code_redeemed_at !== null) return { outcome: 'reused', login: fromRow(row) };
    return { outcome: 'expired' };
  }

  /** Revokes a login and everything issued under it; every instance hears of it. */
  async revoke(id: string, tx?: Queryable): Promise<void> {
    if (!isUuid(id)) return;
    await (tx ?? this.db).query('UPDATE login SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [
      id,
    ]);
    await this.bus.publish({ topic: 'login', id });
  }

  /** Revokes every live login of a membership (deactivation, removal). */
  async revokeByMembership(membershipId: string): Promise<void> {
    const rows = await this.db.query<{ id: string }>(
      'UPDATE login SET revoked_at = now() WHERE membership_id = $1 AND revoked_at IS NULL RETURNING id',
      [membershipId],
    );
    await Promise.all(rows.map((row) => this.bus.publish({ topic: 'login', id: row.id })));
  }

  /**
   * The live state of a login, or undefined when it is revoked or unknown. Cached ≤ 5 s and cleared
   * by invalidation, so revocation reaches every instance (protocol.md §6).
   */
  async live(id: string): Promise<LiveLogin | undefined> {
    const cached = this.stateCache.get(id);
    if (cached !== undefined) return cached ?? undefined;
    if (!isUuid(id)) return undefined;
    const rows = await this.db.query<LoginRow>('SELECT * FROM login WHERE id = $1', [id]);
    const row = rows[0];
    const state = row && row.revoked_at === null ? liveOf(fromRow(row)) : null;
    this.stateCache.set(id, state);
    return state ?? undefined;
  }

  /** Seeds the cache for a login this instance just created (no read after write). */
  remember(login: LoginRecord): void {
    this.stateCache.set(login.id, liveOf(login));
  }
}
