import { normalizeEmail } from '../model/email.ts';

/** What fedhir takes from an external identity, after verification. */
export interface ExternalIdentityClaims {
  /** The provider key (issuer or provider origin): subjects are namespaced by it. */
  provider: string;
  sub: string;
  email: string | undefined;
  /** `true` or Cognito's `"true"` only (protocol.md §3.4); undefined when the claim is absent. */
  emailVerified: boolean | undefined;
  givenName: string | undefined;
  familyName: string | undefined;
}

const MAX_SUB = 255;

/** Reads the claims fedhir uses from a verified claim set; never trusts a value of the wrong type. */
export function readClaims(provider: string, claims: Record<string, unknown>): ExternalIdentityClaims {
  const sub =
    typeof claims.sub === 'string' && claims.sub.length > 0 && claims.sub.length <= MAX_SUB ? claims.sub : '';
  const verified = claims.email_verified;
  return {
    provider,
    sub,
    email: normalizeEmail(claims.email),
    // RP-42: the string "false" (or anything but true / "true") is not truthy.
    emailVerified: verified === undefined ? undefined : verified === true || verified === 'true',
    givenName: typeof claims.given_name === 'string' ? claims.given_name.slice(0, 200) : undefined,
    familyName: typeof claims.family_name === 'string' ? claims.family_name.slice(0, 200) : undefined,
  };
}
