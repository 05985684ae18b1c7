import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { findOutboundError } from '../outbound/outbound-error.ts';
import { ProviderError } from '../provider.ts';
import { verificationFailure } from './errors.ts';
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
    const keys = keySetFailure(err);
    if (keys) throw keys;
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

/**
 * Whether jose failed to obtain the provider's key set, rather than to verify the token: that is the
 * provider's fault, never a verdict on the token — 503 when the key set is unreachable, times out or
 * answers non-200, 400 "answered unexpectedly" when it answers something that is not a key set
 * (protocol.md §4 "Errors"; RFC 8693 §2.2.2 keeps `invalid_request` for the token itself).
 */
function keySetFailure(err: unknown): Error | undefined {
  if (findOutboundError(err)) return verificationFailure(err, 'jwks');
  if (err instanceof errors.JWKSTimeout) {
    return new ProviderError('unavailable', 'jwks: identity provider unavailable');
  }
  if (err instanceof errors.JWKSInvalid) {
    return new ProviderError('invalid-response', 'jwks: identity provider answered unexpectedly');
  }
  // jose's remote key set raises plain JOSEErrors (no subclass) for a non-200 answer and for a body
  // that is not JSON; token problems always raise a subclass.
  if (err instanceof errors.JOSEError && err.code === errors.JOSEError.code) {
    return err.message.startsWith('Expected 200 OK')
      ? new ProviderError('unavailable', 'jwks: identity provider unavailable')
      : new ProviderError('invalid-response', 'jwks: identity provider answered unexpectedly');
  }
  return undefined;
}
