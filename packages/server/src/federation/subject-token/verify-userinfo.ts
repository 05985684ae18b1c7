import { type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { GuardedFetch } from '../outbound/index.ts';
import { ProviderError } from '../provider.ts';
import { verificationFailure } from './errors.ts';
import type { CachedOutcome } from './subject-cache.ts';

function retryAfter(response: Response): number | undefined {
  const value = Number(response.headers.get('retry-after'));
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * The `userinfo` method (protocol.md §4): `GET userInfoUrl` with `Authorization: Bearer` (never the
 * query, RP-39). Proves the token is live at the provider — not which app it was issued to.
 * A JSON object is taken; a signed JWT answer is verified against the provider's keys, never merely
 * decoded (TX-19); anything else is an unexpected answer (TX-16).
 * Provider rejections become a cacheable `{ok: false}`; outages throw (they are not cached).
 */
export async function verifyWithUserinfo(
  fetch: GuardedFetch,
  userInfoUrl: string,
  token: string,
  keys: { jwks: JWTVerifyGetKey; issuer: string | undefined; clientId: string | undefined } | undefined,
): Promise<CachedOutcome> {
  let response: Response;
  try {
    response = await fetch(userInfoUrl, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json, application/jwt' },
    });
  } catch (err) {
    throw verificationFailure(err, 'userinfo');
  }
  if (response.status === 401 || response.status === 403) {
    return { ok: false, reason: `the identity provider rejected the token (${response.status})` };
  }
  if (response.status === 429)
    throw new ProviderError('rate-limited', 'userinfo: throttled', retryAfter(response));
  if (response.status >= 500)
    throw new ProviderError('unavailable', 'userinfo: identity provider unavailable');
  if (response.status !== 200)
    throw new ProviderError('invalid-response', 'identity provider answered unexpectedly');

  const type = (response.headers.get('content-type') ?? '').toLowerCase();
  if (type.startsWith('application/jwt')) {
    if (!keys)
      return { ok: false, reason: 'signed userinfo cannot be verified: the provider has no key source' };
    try {
      const { payload } = await jwtVerify((await response.text()).trim(), keys.jwks, {
        algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
        ...(keys.issuer ? { issuer: keys.issuer } : {}),
        ...(keys.clientId ? { audience: keys.clientId } : {}),
      });
      return { ok: true, claims: payload as Record<string, unknown> };
    } catch {
      return { ok: false, reason: 'signed userinfo answer failed verification' };
    }
  }
  if (!type.includes('json'))
    throw new ProviderError('invalid-response', 'identity provider answered unexpectedly');
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ProviderError('invalid-response', 'identity provider answered unexpectedly');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProviderError('invalid-response', 'identity provider answered unexpectedly');
  }
  return { ok: true, claims: body as Record<string, unknown> };
}
