import { createHash, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, type JWTHeaderParameters, type JWTPayload, jwtVerify } from 'jose';
import { digest } from '../crypto/digest.ts';
import { InvalidToken } from './errors.ts';
import type { KeyStore, SigningAlg } from './keys.ts';
import type { JwsSigner } from './signer.ts';

/** Claims fedhir puts in its access tokens (RFC 9068 §2.2 plus Medplum's `login_id`, `profile`). */
export interface AccessTokenClaims {
  nbf?: number;
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  jti: string;
  login_id: string;
  client_id?: string;
  profile?: string;
  scope: string;
  username?: string;
}

export interface IssuedAccessToken {
  token: string;
  expiresIn: number;
  claims: AccessTokenClaims;
}

export interface IdTokenInput {
  sub: string;
  clientId: string;
  nonce?: string;
  authTime: number;
  fhirUser?: string;
  accessToken?: string;
  lifetimeSeconds: number;
  alg: SigningAlg;
  extra?: Record<string, unknown>;
}

/**
 * Clock leeway for `nbf`/`iat` of our own tokens (a sibling instance's clock may run slightly ahead).
 * `exp` gets none: RFC 7519 §4.1.4 says a token MUST NOT be accepted on or after it, and we are both
 * issuer and audience, so a lifetime is exactly what we signed (OP-34: refused 1 s after exp).
 */
const LEEWAY_SECONDS = 5;
/** Bound of the verified-token cache; old entries go first (Map keeps insertion order). */
export const VERIFIED_CACHE_MAX = 50_000;

/**
 * Issues and verifies fedhir's JWTs with jose. Access tokens are RFC 9068 (`typ: at+jwt`, ES256,
 * `aud` = this server), so an ID token (`aud` = a client id) can never pass as one.
 *
 * Verification is cached by the exact token until its `exp` (performance.md: an ES256
 * verification per API request would cap throughput); revocation is checked separately on every
 * request by the caller, so the cache never extends a revoked session. The cache is keyed by the
 * token's SHA-256, not by the token: ~43 bytes a key instead of ~700 (50,000 entries: ~3 MB against
 * ~35 MB), and the process's heap holds no bearer token beyond the request that carried it.
 */
export class TokenService {
  /** SHA-256 of a verified token → its claims. */
  private readonly verified = new Map<string, AccessTokenClaims>();

  constructor(
    private readonly keys: KeyStore,
    private readonly issuer: string,
    private readonly signer: JwsSigner,
  ) {}

  async signAccessToken(
    claims: Omit<AccessTokenClaims, 'iss' | 'aud' | 'exp' | 'iat' | 'nbf' | 'jti'>,
    lifetimeSeconds: number,
  ): Promise<IssuedAccessToken> {
    const key = this.keys.signingKey('ES256');
    const now = Math.floor(Date.now() / 1000);
    // Every claim named, none spread in: a spread followed by more properties leaves V8 a
    // dictionary-mode object (~2.6 KB a token against ~0.1 KB, docs/performance.md). Claims left
    // undefined are not in the JSON.
    const full: AccessTokenClaims = {
      iss: this.issuer,
      sub: claims.sub,
      aud: this.issuer,
      exp: now + lifetimeSeconds,
      iat: now,
      nbf: now,
      jti: randomUUID(),
      login_id: claims.login_id,
      client_id: claims.client_id,
      profile: claims.profile,
      scope: claims.scope,
      username: claims.username,
    };
    const token = await this.signJwt(full, { alg: 'ES256', typ: 'at+jwt', kid: key.kid }, key.privateKey);
    return { token, expiresIn: lifetimeSeconds, claims: full };
  }

  /** OIDC Core §2 ID token; `at_hash` per §3.1.3.6 (left half of the hash of the access token). */
  async signIdToken(input: IdTokenInput): Promise<string> {
    const key = this.keys.signingKey(input.alg);
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = {
      ...input.extra,
      iss: this.issuer,
      sub: input.sub,
      aud: input.clientId,
      azp: input.clientId,
      iat: now,
      exp: now + input.lifetimeSeconds,
      auth_time: input.authTime,
      ...(input.nonce ? { nonce: input.nonce } : {}),
      ...(input.fhirUser ? { fhirUser: input.fhirUser } : {}),
      ...(input.accessToken ? { at_hash: atHash(input.accessToken) } : {}),
    };
    return this.signJwt(payload, { alg: input.alg, typ: 'JWT', kid: key.kid }, key.privateKey);
  }

  /**
   * A JWT (RFC 7519 §7.1) as a JWS in compact serialisation, signed by signer.ts (ES256 by fast-jwt
   * on the signing thread, RS256 by jose through WebCrypto). The claims are complete and typed when
   * they get here, so their JSON is signed as it is, with none added.
   */
  private signJwt(
    claims: AccessTokenClaims | JWTPayload,
    header: JWTHeaderParameters & { kid: string },
    key: CryptoKey,
  ): Promise<string> {
    return this.signer.sign(header, JSON.stringify(claims), key);
  }

  /**
   * Verifies one of our access tokens: signature by a known key, `typ` at+jwt, issuer, audience,
   * exp/nbf with a small leeway. Throws {@link InvalidToken}. Does not check revocation.
   */
  async verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    if (token.length > 8192) throw new InvalidToken('malformed access token');
    const cacheKey = digest(token);
    const cached = this.verified.get(cacheKey);
    if (cached) {
      if (cached.exp > Date.now() / 1000) return cached;
      this.verified.delete(cacheKey);
      throw new InvalidToken('access token expired');
    }
    if (token.split('.').length !== 3) throw new InvalidToken('malformed access token');
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new InvalidToken('malformed access token');
    }
    const key = kid ? await this.keys.verificationKey(kid) : undefined;
    if (key?.alg !== 'ES256') throw new InvalidToken('access token not signed by this server');
    let claims: AccessTokenClaims;
    try {
      const result = await jwtVerify(token, key.publicKey, {
        algorithms: ['ES256'],
        issuer: this.issuer,
        audience: this.issuer,
        typ: 'at+jwt',
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
      });
      claims = result.payload as unknown as AccessTokenClaims;
    } catch {
      throw new InvalidToken('access token invalid or expired');
    }
    // NumericDates are integers (RB-13): `1e309` parses to Infinity, which jose would take as "never".
    if (![claims.exp, claims.iat, claims.nbf ?? 0].every(Number.isSafeInteger)) {
      throw new InvalidToken('access token invalid or expired');
    }
    if (claims.exp <= Date.now() / 1000) throw new InvalidToken('access token invalid or expired');
    if (typeof claims.login_id !== 'string') throw new InvalidToken('access token has no login');
    if (this.verified.size >= VERIFIED_CACHE_MAX) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(cacheKey, claims);
    return claims;
  }
}

/** OIDC Core §3.1.3.6: base64url of the left-most half of SHA-256 of the access token. */
export function atHash(accessToken: string): string {
  const hash = createHash('sha256').update(accessToken, 'ascii').digest();
  return hash.subarray(0, hash.length / 2).toString('base64url');
}
