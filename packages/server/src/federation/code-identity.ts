import * as oauth from 'oauth4webapi';
import { type ExternalIdentityClaims, readClaims } from './claims.ts';
import { ProviderError, providerFailure, type ResolvedProvider } from './provider.ts';

export interface CodeRedemption {
  code: string;
  redirectUri: string;
  /** Our own PKCE verifier toward the provider (§3.2), never the app's. */
  codeVerifier?: string;
  /** The nonce we sent (§3.2); undefined when we sent none (§3.1). */
  nonce?: string;
}

/** The parameters oauth4webapi validates a callback against; we validated state ourselves. */
function callbackParameters(code: string): URLSearchParams {
  return new URLSearchParams({ code });
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
      callbackParameters(redemption.code),
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
      await oauth.validateApplicationLevelSignature(as, response, options);
      tokens = processed;
      idClaims = oauth.getValidatedIdTokenClaims(processed) as unknown as Record<string, unknown>;
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
    const info = await oauth.processUserInfoResponse(
      as,
      client,
      fromIdToken ? fromIdToken.sub : oauth.skipSubjectCheck,
      response,
    );
    const merged = { ...(idClaims ?? {}), ...info, sub: fromIdToken?.sub ?? info.sub };
    return readClaims(provider.key, merged);
  } catch (err) {
    throw providerFailure(err, 'userinfo');
  }
}
