import { createHash } from 'node:crypto';

/** RFC 7636 §4.1: 43–128 characters of the unreserved set. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** RFC 7636 §4.2: S256 challenges are base64url of a SHA-256 digest: exactly 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

/** Why an authorization request's PKCE parameters are unacceptable (OP-12..14), or undefined. */
export function challengeProblem(
  challenge: string | undefined,
  method: string | undefined,
): string | undefined {
  if (challenge === undefined)
    return method === undefined
      ? 'code_challenge is required'
      : 'code_challenge is required with code_challenge_method';
  // Hardening §7.1: S256 only; an omitted method means plain (RFC 7636 §4.3), which is refused.
  if (method !== 'S256') return 'code_challenge_method must be S256';
  if (!S256_CHALLENGE.test(challenge)) return 'code_challenge must be 43 base64url characters';
  return undefined;
}

/** RFC 7636 §4.6: base64url(SHA-256(verifier)) equals the stored challenge. */
export function verifierMatches(verifier: string, challenge: string): boolean {
  if (!VERIFIER.test(verifier)) return false;
  return createHash('sha256').update(verifier, 'ascii').digest('base64url') === challenge;
}
