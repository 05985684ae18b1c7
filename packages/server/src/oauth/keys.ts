import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Db } from '../storage/db.ts';

export type SigningAlg = 'ES256' | 'RS256';
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'RS256'];

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  retiredAt: Date | undefined;
}

interface KeyRow {
  kid: string;
  alg: SigningAlg;
  public_jwk: JWK;
  private_sealed: string;
  retired_at: Date | null;
}

const KEY_LOCK = 7_262_002;
/** How often an unknown `kid` may trigger a reload from the database (another instance rotated). */
const RELOAD_COOLDOWN_MS = 30_000;

/**
 * The server's signing keys (protocol.md §5): ES256 for access tokens, RS256 (default) and ES256 for
 * ID tokens. Kept in the database with the private part sealed by SECRET_KEY, so every instance signs
 * with the same keys; imported once into memory. Rotation: a new key signs at once, retired keys keep
 * verifying (and stay in the JWKS) until every token they signed has expired.
 */
export class KeyStore {
  private readonly keys = new Map<string, SigningKey>();
  private readonly active = new Map<SigningAlg, SigningKey>();
  private lastReload = 0;

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    /** Longest lifetime of anything a key signs; a retired key is dropped after it. */
    private readonly maxTokenLifetimeSeconds: number,
  ) {}

  /** Loads the keys, creating the first key of each algorithm when there is none (once, cluster-wide). */
  async load(): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_LOCK]);
      for (const alg of SIGNING_ALGS) {
        const rows = await tx.query('SELECT kid FROM signing_key WHERE alg = $1 AND retired_at IS NULL', [
          alg,
        ]);
        if (rows.length === 0) await this.insertNewKey(tx, alg);
      }
    });
    await this.reload();
  }

  private async insertNewKey(tx: Pick<Db, 'query'>, alg: SigningAlg): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
    });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const privateJwk = await exportJWK(privateKey);
    await tx.query(
      'INSERT INTO signing_key (kid, alg, public_jwk, private_sealed) VALUES ($1, $2, $3::jsonb, $4)',
      [kid, alg, JSON.stringify(publicJwk), await this.box.seal(JSON.stringify(privateJwk))],
    );
  }

  private async reload(): Promise<void> {
    this.lastReload = Date.now();
    const horizon = new Date(Date.now() - this.maxTokenLifetimeSeconds * 1000);
    const rows = await this.db.query<KeyRow>(
      'SELECT kid, alg, public_jwk, private_sealed, retired_at FROM signing_key WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at',
      [horizon.toISOString()],
    );
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.kid);
      let key = this.keys.get(row.kid);
      if (!key) {
        const privateJwk = JSON.parse(await this.box.open(row.private_sealed)) as JWK;
        key = {
          kid: row.kid,
          alg: row.alg,
          privateKey: (await importJWK(privateJwk, row.alg)) as CryptoKey,
          publicKey: (await importJWK(row.public_jwk, row.alg)) as CryptoKey,
          publicJwk: row.public_jwk,
          retiredAt: undefined,
        };
        this.keys.set(row.kid, key);
      }
      key.retiredAt = row.retired_at ? new Date(row.retired_at) : undefined;
      if (!key.retiredAt) this.active.set(row.alg, key);
    }
    for (const kid of this.keys.keys()) if (!seen.has(kid)) this.keys.delete(kid);
  }

  /** The key that signs new tokens of this algorithm. */
  signingKey(alg: SigningAlg): SigningKey {
    const key = this.active.get(alg);
    if (!key) throw new Error(`no active ${alg} signing key; KeyStore.load() was not called`);
    return key;
  }

  /**
   * The key for a token's `kid`. An unknown kid may mean another instance rotated: reload from the
   * database, at most once per cooldown so a spray of random kids cannot hammer it.
   */
  async verificationKey(kid: string): Promise<SigningKey | undefined> {
    const known = this.keys.get(kid);
    if (known) return known;
    if (Date.now() - this.lastReload < RELOAD_COOLDOWN_MS) return undefined;
    await this.reload();
    return this.keys.get(kid);
  }

  /** Synchronous lookup for the hot path (no reload). */
  knownKey(kid: string): SigningKey | undefined {
    return this.keys.get(kid);
  }

  /** Public keys for /.well-known/jwks.json: every key that may still verify a live token. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.keys.values()].map((k) => k.publicJwk) };
  }

  /** Rotation (OP-43): a new key signs from now; the old one verifies until its tokens expire. */
  async rotate(alg: SigningAlg): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_LOCK]);
      await tx.query('UPDATE signing_key SET retired_at = now() WHERE alg = $1 AND retired_at IS NULL', [
        alg,
      ]);
      await this.insertNewKey(tx, alg);
    });
    this.active.delete(alg);
    await this.reload();
  }
}
