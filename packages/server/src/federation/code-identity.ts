import * as oauth from 'oauth4webapi';
import { type ExternalIdentityClaims, readClaims } from './claims.ts';
import {
  CLOCK_TOLERANCE_SECONDS,
  ProviderError,
  providerFailure,
  type ResolvedProvider,
} from './provider.ts';

export interface CodeRedemption {
  code: string;
  redirectUri: string;
  /** Our own PKCE verifier toward the provider (§3.2), never the app's. */
  codeVerifier?: string;
  /** The nonce we sent (§3.2); undefined when we sent none (§3.1). */
  nonce?: string;
  /** The callback's `iss` (RFC 9207), for providers with a configured issuer. */
  iss?: string;
}

/**
 * The parameters oauth4webapi validates a callback against: `code`, and `iss`, which it requires when
 * the provider advertises `authorization_response_iss_parameter_supported` (RFC 9207 §2.4). We
 * validated `state` ourselves.
 */
function callbackParameters(code: string, iss: string | undefined): URLSearchParams {
  return new URLSearchParams({ code, ...(iss !== undefined ? { iss } : {}) });
}

/** Whether oauth4webapi found no key for the JWS: no candidate in the set for its `kid`/`alg`. */
function unknownKey(err: unknown): boolean {
  if (!(err instanceof oauth.OperationProcessingError) || err.code !== oauth.KEY_SELECTION) return false;
  const candidates = (err.cause as { candidates?: unknown } | undefined)?.candidates;
  return Array.isArray(candidates) && candidates.length === 0;
}

/**
 * Verifies the signature of the JWT oauth4webapi kept for `response` (ID token or JWT userinfo)
 * against the provider's JWKS — never `none`, never HS* (RP-20..22), never a key named by a header
 * (`jku`, `x5u`, `jwk`: RP-24). A `kid` the cached set lacks earns one refetch per cooldown: a
 * rotation is picked up, a spray of random kids is not (OIDC Core §10.1.1, RP-27). A copy of `as` is
 * passed so the library reads the shared cache rather than its per-object one.
 */
async function verifySignature(provider: ResolvedProvider, response: Response): Promise<void> {
  const { keys } = provider;
  const downloaded = keys.downloadedAt;
  try {
    await oauth.validateApplicationLevelSignature({ ...provider.as }, response, provider.options);
  } catch (err) {
    if (!unknownKey(err)) throw err;
    if (keys.downloadedAt !== downloaded) {
      // The library refetched a stale set by itself: that was this kid's refetch.
      keys.refetched();
      throw err;
    }
    if (!keys.forceRefetch()) throw err;
    await oauth.validateApplicationLevelSignature({ ...provider.as }, response, provider.options);
  }
}

/**
 * Redeems a provider's authorization code and establishes the identity (protocol.md §3.3):
 * with an issuer, the ID token is validated by oauth4webapi (iss, aud, exp, iat, azp, nonce) and its
 * signature checked against the provider's JWKS (never `none`, never HS*: RP-20..23); claims the ID
 * token lacks are read from userinfo with the fresh access token, whose `sub` must match (RP-38).
 * Without an issuer, identity comes from userinfo alone over TLS: unsigned claims are never trusted.
 */
export async function identityFromCode(
  provider: ResolvedProvider,
  redemption: CodeRedemption,
): Promise<ExternalIdentityClaims> {
  const { as, client, clientAuth, options } = provider;
  let tokens: oauth.TokenEndpointResponse;
  let idClaims: Record<string, unknown> | undefined;
  try {
    const params = oauth.validateAuthResponse(
      as,
      client,
      callbackParameters(redemption.code, redemption.iss),
      oauth.skipStateCheck,
    );
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      params,
      redemption.redirectUri,
      redemption.codeVerifier ?? oauth.nopkce,
      options,
    );
    if (provider.hasIssuer) {
      const processed = await oauth.processAuthorizationCodeResponse(as, client, response, {
        expectedNonce: redemption.nonce ?? oauth.expectNoNonce,
        requireIdToken: true,
      });
      await verifySignature(provider, response);
      tokens = processed;
      idClaims = oauth.getValidatedIdTokenClaims(processed) as unknown as Record<string, unknown>;
      // OIDC Core §3.1.3.7 step 10: an `iat` far in the future is refused (oauth4webapi checks `exp`
      // and `nbf` with the leeway, not `iat`; RB-11).
      const iat = idClaims.iat;
      if (typeof iat === 'number' && iat > Math.floor(Date.now() / 1000) + CLOCK_TOLERANCE_SECONDS) {
        throw new ProviderError('invalid-response', 'the ID token was issued in the future');
      }
    } else {
      // No issuer: the ID token cannot be validated, so it is dropped and userinfo decides.
      const body = (await response.json()) as Record<string, unknown>;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new ProviderError('invalid-response', 'token endpoint answered unexpectedly');
      }
      delete body.id_token;
      tokens = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        new Response(JSON.stringify(body), {
          status: response.status,
          headers: { 'content-type': 'application/json' },
        }),
      );
    }
    // RFC 6749 §7.1: a client must not use an access token whose type it does not understand. We
    // present it as a bearer token (RFC 6750); a DPoP-bound token would need a proof (RP-18).
    // oauth4webapi lower-cases the type, so "Bearer" and "BEARER" pass.
    if (tokens.token_type !== 'bearer') {
      throw new ProviderError('invalid-response', 'the token endpoint answered an unsupported token_type');
    }
  } catch (err) {
    throw providerFailure(err, 'code redemption');
  }

  const fromIdToken = idClaims ? readClaims(provider.key, idClaims) : undefined;
  const complete = fromIdToken?.email !== undefined && fromIdToken.emailVerified !== undefined;
  if (fromIdToken && (complete || !as.userinfo_endpoint)) return fromIdToken;
  if (!as.userinfo_endpoint)
    throw new ProviderError('misconfigured', 'the identity provider has no userinfo endpoint');

  try {
    const response = await oauth.userInfoRequest(as, client, tokens.access_token, options);
    const signed =
      response.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() === 'application/jwt';
    const info = await oauth.processUserInfoResponse(
      as,
      client,
      fromIdToken ? fromIdToken.sub : oauth.skipSubjectCheck,
      response,
    );
    // OIDC Core §5.3.4 step 3: a JWT userinfo answer is trusted only once its signature verifies.
    // oauth4webapi parses it (alg checked against the metadata, which may even list `none`) but
    // leaves the signature to the caller (RP-40).
    if (signed) await verifySignature(provider, response);
    const merged = { ...(idClaims ?? {}), ...info, sub: fromIdToken?.sub ?? info.sub };
    return readClaims(provider.key, merged);
  } catch (err) {
    throw providerFailure(err, 'userinfo');
  }
}
