import { BadRequest } from '../errors/http-errors.ts';
import type { IdentityProvider } from '../model/types.ts';
import { validateOutboundUrl } from './outbound/index.ts';

const URL_FIELDS = [
  'issuer',
  'jwksUrl',
  'introspectionUrl',
  'authorizeUrl',
  'tokenUrl',
  'userInfoUrl',
] as const;
const TOKEN_AUTH_METHODS = ['client_secret_basic', 'client_secret_post'];
const VERIFICATION_METHODS = ['userinfo', 'jwks', 'introspection'];
const BOOLEAN_FIELDS = ['usePkce', 'useSubject', 'justInTimeProvisioning', 'allowUnverifiedEmail'] as const;
const STRING_FIELDS = ['audience', 'clientId'] as const;

/**
 * Validation of an identity provider at save (protocol.md §2 "Validation at save"): every URL passes
 * the outbound guard's static check (https, no private or internal destination unless allowed by
 * ALLOW_PRIVATE_IDP_URLS — RP-49, RP-50); `audience` differs from `clientId`, so an ID token can never
 * pass as an access token for our API; the verification method has what it needs.
 * `field` is the FHIRPath prefix used in error messages (e.g. `ClientApplication.identityProvider`).
 */
export function validateIdentityProvider(
  idp: unknown,
  allow: readonly string[],
  field: string,
): IdentityProvider {
  if (typeof idp !== 'object' || idp === null || Array.isArray(idp)) {
    throw new BadRequest(`${field} must be an object`, field);
  }
  const value = idp as Record<string, unknown>;
  for (const name of URL_FIELDS) {
    const url = value[name];
    if (url === undefined || url === null) continue;
    if (typeof url !== 'string' || url.length > 2000)
      throw new BadRequest(`${field}.${name} must be a URL`, `${field}.${name}`);
    const check = validateOutboundUrl(url, allow);
    if (!check.ok)
      throw new BadRequest(`${field}.${name} is not allowed: ${check.reason}`, `${field}.${name}`);
  }
  for (const name of STRING_FIELDS) {
    const v = value[name];
    if (v !== undefined && v !== null && (typeof v !== 'string' || v.length > 1000)) {
      throw new BadRequest(`${field}.${name} must be a string`, `${field}.${name}`);
    }
  }
  for (const name of BOOLEAN_FIELDS) {
    const v = value[name];
    if (v !== undefined && v !== null && typeof v !== 'boolean') {
      throw new BadRequest(`${field}.${name} must be true or false`, `${field}.${name}`);
    }
  }
  if (value.tokenAuthMethod !== undefined && !TOKEN_AUTH_METHODS.includes(value.tokenAuthMethod as string)) {
    throw new BadRequest(
      `${field}.tokenAuthMethod must be one of ${TOKEN_AUTH_METHODS.join(', ')}`,
      `${field}.tokenAuthMethod`,
    );
  }
  const method = value.tokenVerificationMethod;
  if (method !== undefined && !VERIFICATION_METHODS.includes(method as string)) {
    throw new BadRequest(
      `${field}.tokenVerificationMethod must be one of ${VERIFICATION_METHODS.join(', ')}`,
      `${field}.tokenVerificationMethod`,
    );
  }
  if (value.justInTimeProvisioning === true) {
    const policy = value.justInTimeAccessPolicy;
    if (typeof policy !== 'string' || !/^AccessPolicy\/[0-9a-f-]{36}$/i.test(policy)) {
      throw new BadRequest(
        `${field}.justInTimeAccessPolicy (an AccessPolicy reference) is required with justInTimeProvisioning: self-registered users must not get unrestricted access`,
        `${field}.justInTimeAccessPolicy`,
      );
    }
  }
  if (typeof value.audience === 'string' && value.audience === value.clientId) {
    throw new BadRequest(
      `${field}.audience must differ from clientId (the audience of ID tokens), so that an ID token never passes as an access token`,
      `${field}.audience`,
    );
  }
  if (method === 'jwks' && (!(value.issuer || value.jwksUrl) || !value.audience)) {
    throw new BadRequest(
      `${field}: tokenVerificationMethod jwks needs issuer or jwksUrl, and audience`,
      `${field}.tokenVerificationMethod`,
    );
  }
  if (method === 'introspection' && !value.introspectionUrl) {
    throw new BadRequest(
      `${field}: tokenVerificationMethod introspection needs introspectionUrl`,
      `${field}.tokenVerificationMethod`,
    );
  }
  if (method === 'userinfo' && !value.userInfoUrl && !value.issuer) {
    throw new BadRequest(
      `${field}: tokenVerificationMethod userinfo needs userInfoUrl or issuer`,
      `${field}.tokenVerificationMethod`,
    );
  }
  return value as IdentityProvider;
}
