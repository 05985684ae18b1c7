import { randomBytes } from 'node:crypto';
import { digest } from '../crypto/digest.ts';
import type { Services } from '../services/container.ts';

/** What a §3.2 sign-in must remember between the redirect to the provider and its callback. */
export interface PendingFlow {
  clientId: string;
  redirectUri: string;
  /** Whether the app's request carried redirect_uri (then the token request must repeat it). */
  redirectUriSent?: boolean;
  appState: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  scope: string;
  appNonce: string | undefined;
  /** Our PKCE verifier toward the provider (RP-02: never the app's challenge). */
  verifier: string;
  /** Our nonce toward the provider. */
  nonce: string;
  /** The provider key (issuer) the flow is bound to: a callback is checked against it (RP-11, RP-13). */
  provider: string;
}

const FLOW_TTL_SECONDS = 600;
/** Expired flows deleted per new start: more than arrive, so the table drains. */
const PURGE_BATCH = 100;

/** ≥ 256 bits from the CSPRNG (RP-02). */
export function randomHandle(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Pending §3.2 flows in the database (shared by every instance): looked up by the digest of the
 * opaque `state`, bound to a cookie, single use, 10 minutes (RP-04..07, RB-10, RB-15).
 */
export class ExternalFlowStore {
  constructor(private readonly services: Services) {}

  async create(flow: PendingFlow): Promise<{ state: string; cookie: string }> {
    const state = randomHandle();
    const cookie = randomHandle();
    const { db, box } = this.services;
    await db.query(
      `INSERT INTO external_flow (state_digest, cookie_digest, client_id, payload_sealed, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
      [digest(state), digest(cookie), flow.clientId, await box.seal(JSON.stringify(flow)), FLOW_TTL_SECONDS],
    );
    // Expired flows are deleted as new ones arrive, a bounded batch per start, so abandoned starts
    // cannot pile up beyond what 10 minutes of arrivals hold (RB-15). An expired flow is useless:
    // consume() never matches it.
    await db
      .query(
        `DELETE FROM external_flow WHERE state_digest IN (
           SELECT state_digest FROM external_flow WHERE expires_at < now() LIMIT $1)`,
        [PURGE_BATCH],
      )
      .catch(() => {});
    return { state, cookie };
  }

  /**
   * Consumes a flow: one conditional UPDATE, so of two concurrent callbacks exactly one wins (RB-10).
   * A missing or foreign cookie fails (RP-07), and so does a used or expired state (RP-06).
   */
  async consume(state: string, cookie: string | undefined): Promise<PendingFlow | undefined> {
    if (!cookie || state.length > 512 || cookie.length > 512) return undefined;
    const rows = await this.services.db.query<{ payload_sealed: string }>(
      `UPDATE external_flow SET consumed_at = now()
       WHERE state_digest = $1 AND cookie_digest = $2 AND consumed_at IS NULL AND expires_at > now()
       RETURNING payload_sealed`,
      [digest(state), digest(cookie)],
    );
    const row = rows[0];
    if (!row) return undefined;
    return JSON.parse(await this.services.box.open(row.payload_sealed)) as PendingFlow;
  }
}
