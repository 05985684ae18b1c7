import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { CachedOutcome } from './subject-cache.ts';

/** Asymmetric algorithms only: never `none`, never HS* (RP-21, RP-22, RFC 8725 §3.1). */
export const SUBJECT_TOKEN_ALGS = [
  'ES256',
  'ES384',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
];

/**
 * The `jwks` method (protocol.md §4): local verification of a JWT access token — signature by the
 * provider's keys, `iss` = issuer, `aud` contains our configured audience, `exp`, `nbf` — and refusal
 * of ID tokens passed as access tokens (`nonce`, `at_hash` or `token_use: id`: TX-04).
 * For `…:id_token` subject tokens (`kind: 'id_token'`), `aud` is the provider client id instead.
 */
export async function verifyJwtSubject(
  token: string,
  jwks: JWTVerifyGetKey,
  expected: { issuer: string | undefined; audience: string; kind: 'access_token' | 'id_token' },
): Promise<CachedOutcome & { expiresAtMs?: number }> {
  let payload: JWTPayload;
  try {
    const result = await jwtVerify(token, jwks, {
      algorithms: SUBJECT_TOKEN_ALGS,
      ...(expected.issuer ? { issuer: expected.issuer } : {}),
      audience: expected.audience,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: 60,
    });
    payload = result.payload;
  } catch (err) {
    if (err instanceof errors.JWKSTimeout) throw err;
    const reason =
      err instanceof errors.JWTExpired
        ? 'subject token expired'
        : err instanceof errors.JWTClaimValidationFailed
          ? `subject token ${err.claim} is not acceptable`
          : 'subject token signature or format is invalid';
    return { ok: false, reason };
  }
  if (
    expected.kind === 'access_token' &&
    (payload.nonce !== undefined || payload.at_hash !== undefined || payload.token_use === 'id')
  ) {
    return { ok: false, reason: 'an ID token is not an access token' };
  }
  return { ok: true, claims: payload as Record<string, unknown>, expiresAtMs: (payload.exp ?? 0) * 1000 };
}
