import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import type { ClientIdentity } from '../oauth/client-auth.ts';
import { InvalidClient, InvalidRequest, InvalidTarget, UnauthorizedClient } from '../oauth/errors.ts';
import { type IssuedTokens, issueTokens } from '../oauth/issue.ts';
import { refreshTokenLifetime } from '../oauth/lifetimes.ts';
import { grantableScope } from '../oauth/scope.ts';
import type { Services } from '../services/container.ts';
import { TtlCache } from '../services/ttl-cache.ts';
import { timeOrderedId } from '../storage/ids.ts';
import { readClaims } from './claims.ts';
import { mapIdentity } from './mapping.ts';
import {
  ProviderError,
  type ResolvedProvider,
  resolveProvider,
  type StoredIdentityProvider,
} from './provider.ts';
import { exchangeError, verificationFailure } from './subject-token/errors.ts';
import { type CachedOutcome, SubjectTokenCache } from './subject-token/subject-cache.ts';
import { verifyJwtSubject } from './subject-token/verify-jwt.ts';
import { verifyWithUserinfo } from './subject-token/verify-userinfo.ts';

export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_ID = 'urn:ietf:params:oauth:token-type:id_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';

/** RFC 6750 §2.1 b64token, bounded (TX-30): checked before any outbound call. */
const SUBJECT_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const MAX_SUBJECT_TOKEN = 8192;

export interface ExchangeRequest {
  identity: ClientIdentity;
  subjectToken: string | undefined;
  subjectTokenType: string | undefined;
  scope: string | undefined;
  membershipId: string | undefined;
  audience: string | undefined;
  resource: string | undefined;
  requestedTokenType: string | undefined;
  actorToken: string | undefined;
  actorTokenType: string | undefined;
  /** Legacy POST /auth/exchange only (protocol.md §2): copied into the ID token, as Medplum does. */
  nonce?: string | undefined;
}

type Method = 'userinfo' | 'jwks' | 'introspection';

function chooseMethod(idp: StoredIdentityProvider): Method {
  if (idp.tokenVerificationMethod) return idp.tokenVerificationMethod;
  if ((idp.issuer || idp.jwksUrl) && idp.audience) return 'jwks';
  if (idp.introspectionUrl) return 'introspection';
  return 'userinfo';
}

function isJwt(token: string): boolean {
  return token.split('.').length === 3;
}

/**
 * Token exchange (RFC 8693, protocol.md §4), shared by the grant and the legacy POST /auth/exchange:
 * parameters, client, provider, verification (by the configured method, cached), mapping to a
 * membership of the client's project, and a fresh Login with its own tokens.
 */
export class TokenExchange {
  private readonly cache: SubjectTokenCache;
  private readonly providers = new TtlCache<ResolvedProvider>(10 * 60_000, 10_000);

  constructor(private readonly services: Services) {
    this.cache = new SubjectTokenCache(services.redis);
  }

  async exchange(request: ExchangeRequest): Promise<IssuedTokens> {
    try {
      return await this.run(request);
    } catch (err) {
      throw exchangeError(err) ?? err;
    }
  }

  private assertParameters(request: ExchangeRequest): { token: string; type: string } {
    // TX-05: delegation is not offered; an actor token is never silently ignored.
    if (request.actorToken !== undefined || request.actorTokenType !== undefined) {
      throw new InvalidRequest('actor_token is not supported');
    }
    const token = request.subjectToken;
    const type = request.subjectTokenType;
    if (token === undefined) throw new InvalidRequest('subject_token is required');
    if (type === undefined) throw new InvalidRequest('subject_token_type is required');
    if (token.length > MAX_SUBJECT_TOKEN || !SUBJECT_TOKEN.test(token))
      throw new InvalidRequest('subject_token is malformed');
    if (![TOKEN_TYPE_ACCESS, TOKEN_TYPE_ID, TOKEN_TYPE_JWT].includes(type)) {
      // TX-03: invalid_request, not unsupported_token_type (an RFC 7009 code).
      throw new InvalidRequest('unsupported subject_token_type');
    }
    if (request.requestedTokenType !== undefined && request.requestedTokenType !== TOKEN_TYPE_ACCESS) {
      throw new InvalidRequest('requested_token_type must be urn:ietf:params:oauth:token-type:access_token');
    }
    const ours = new Set([
      this.services.config.baseUrl,
      this.services.config.baseUrl.replace(/\/$/, ''),
      `${this.services.config.baseUrl}fhir/R4`,
    ]);
    for (const target of [request.audience, request.resource]) {
      if (target !== undefined && !ours.has(target))
        throw new InvalidTarget('audience or resource is not this server');
    }
    return { token, type };
  }

  private async run(request: ExchangeRequest): Promise<IssuedTokens> {
    const { token, type } = this.assertParameters(request);
    const { identity } = request;
    if (identity.clientId === undefined) throw new InvalidRequest('client_id is required');
    const client = identity.client;
    if (!client) throw new InvalidClient('client authentication failed', identity.usedBasic);
    // RFC 8693 §2.1 on unauthenticated exchange; protocol.md §4 "Client authentication".
    if (!identity.authenticated && client.publicExchange === false) {
      throw new InvalidClient('this client must authenticate to exchange tokens', identity.usedBasic);
    }
    if (client.grantType && !client.grantType.includes('urn:ietf:params:oauth:grant-type:token-exchange')) {
      throw new UnauthorizedClient('this client may not use token exchange');
    }
    const idp = client.identityProvider as StoredIdentityProvider | undefined;
    if (!idp) throw new UnauthorizedClient('this client has no identity provider');
    const hasKeySource = Boolean(idp.issuer || idp.jwksUrl);
    if (type !== TOKEN_TYPE_ACCESS && !hasKeySource) {
      throw new InvalidRequest('id_token and jwt subject tokens need an identity provider with a key source');
    }

    const provider = await this.provider(client.id, client.meta.versionId, idp);
    const outcome = await this.verify(provider, token, type);
    if (!outcome.ok) throw new InvalidRequest(`subject token rejected: ${outcome.reason}`);

    let claims = outcome.claims;
    if (
      !idp.useSubject &&
      claims.email === undefined &&
      provider.as.userinfo_endpoint &&
      chooseMethod(idp) !== 'userinfo'
    ) {
      // Verified locally, but the mapping needs the e-mail: userinfo supplies it, with a sub match.
      const info = await this.userinfo(provider, token);
      if (!info.ok) throw new InvalidRequest(`subject token rejected: ${info.reason}`);
      if (info.claims.sub !== claims.sub)
        throw new InvalidRequest('subject token rejected: userinfo subject differs');
      claims = { ...info.claims, ...claims };
    }
    const external = readClaims(provider.key, claims);
    const membership = await mapIdentity(this.services, {
      projectId: client.meta.project ?? '',
      idp,
      identity: external,
      membershipId: request.membershipId,
    });
    const project = await this.services.access.project(client.meta.project ?? '');
    const scope = grantableScope(request.scope);
    // Tokens are signed for a login id chosen here, then the login and its refresh token are written
    // in one statement: one database round trip per exchange.
    const loginId = timeOrderedId();
    const issued = await issueTokens(this.services, {
      loginId,
      userRef: membership.user.reference,
      membership,
      client,
      scope,
      nonce: request.nonce,
      authTime: new Date(),
      refreshAllowed: project?.superAdmin !== true,
      persistRefresh: false,
    });
    const { login } = await this.services.logins.create(
      {
        userRef: membership.user.reference,
        membershipId: membership.id,
        projectId: client.meta.project,
        clientId: client.id,
        profileRef: membership.profile.reference,
        scope,
        nonce: request.nonce,
        authMethod: 'exchange',
        details: { provider: provider.key },
      },
      {
        id: loginId,
        ...(issued.response.refresh_token
          ? {
              refresh: {
                token: issued.response.refresh_token,
                clientId: client.id,
                scope,
                lifetimeSeconds: refreshTokenLifetime(this.services.config, client),
              },
            }
          : {}),
      },
    );
    this.services.logins.remember(login);
    // RFC 8693 §2.2.1: the type of the issued token.
    return { ...issued, response: { ...issued.response, issued_token_type: TOKEN_TYPE_ACCESS } };
  }

  /**
   * The resolved provider of a client, cached by the client's version: an edited client has a new
   * version, so a stale entry is never used; this keeps discovery and secret unsealing off the path.
   */
  private async provider(
    clientId: string,
    version: string,
    idp: StoredIdentityProvider,
  ): Promise<ResolvedProvider> {
    const key = `${clientId}:${version}`;
    let resolved = this.providers.get(key);
    if (!resolved) {
      resolved = await resolveProvider(this.services, idp);
      this.providers.set(key, resolved);
    }
    return resolved;
  }

  private async verify(provider: ResolvedProvider, token: string, type: string): Promise<CachedOutcome> {
    const idp = provider.config;
    const method = type === TOKEN_TYPE_ACCESS ? chooseMethod(idp) : 'jwks';
    if (method === 'jwks' || type !== TOKEN_TYPE_ACCESS) {
      const jwksUri = provider.as.jwks_uri;
      if (!jwksUri) throw new ProviderError('misconfigured', 'no JWKS for the identity provider');
      const audience = type === TOKEN_TYPE_ID ? idp.clientId : idp.audience;
      if (!audience)
        throw new ProviderError('misconfigured', 'no audience configured for the identity provider');
      try {
        return await verifyJwtSubject(token, this.services.jwks.get(jwksUri), {
          issuer: idp.issuer,
          audience,
          kind: type === TOKEN_TYPE_ID ? 'id_token' : 'access_token',
        });
      } catch (err) {
        throw verificationFailure(err, 'jwks');
      }
    }
    // On the weaker paths, a JWT subject token for another audience is refused before any call
    // (protocol.md §4, TX-26): the app it was issued to must be us.
    if (isJwt(token) && idp.audience) {
      let claims: ReturnType<typeof decodeJwt>;
      try {
        claims = decodeJwt(token);
      } catch {
        throw new InvalidRequest('subject_token is malformed');
      }
      const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud !== undefined ? [claims.aud] : [];
      // Okta puts the app in `cid`, Cognito access tokens in `client_id` (they carry no `aud`).
      const app = [claims.azp, claims.cid, claims.client_id];
      if (!aud.includes(idp.audience) && !app.includes(idp.audience)) {
        throw new InvalidRequest('subject token rejected: it was issued for another audience');
      }
    }
    if (method === 'introspection') return this.introspect(provider, token);
    return this.userinfo(provider, token);
  }

  private expiry(token: string): number | undefined {
    if (!isJwt(token)) return undefined;
    try {
      const exp = decodeJwt(token).exp;
      return typeof exp === 'number' ? exp * 1000 : undefined;
    } catch {
      return undefined;
    }
  }

  private async userinfo(provider: ResolvedProvider, token: string): Promise<CachedOutcome> {
    const url = provider.as.userinfo_endpoint;
    if (!url) throw new ProviderError('misconfigured', 'no userinfo endpoint for the identity provider');
    const keys = provider.as.jwks_uri
      ? {
          jwks: this.services.jwks.get(provider.as.jwks_uri),
          issuer: provider.config.issuer,
          clientId: provider.config.clientId,
        }
      : undefined;
    return this.cache.get(
      SubjectTokenCache.key(url, token),
      () => verifyWithUserinfo(this.services.outbound, url, token, keys),
      this.expiry(token),
    );
  }

  /** RFC 7662 with the provider client's credentials; `active`, audience and token type checked. */
  private async introspect(provider: ResolvedProvider, token: string): Promise<CachedOutcome> {
    const audience = provider.config.audience;
    const key = SubjectTokenCache.key(`introspect\n${provider.as.introspection_endpoint}`, token);
    return this.cache.get(
      key,
      async () => {
        let result: oauth.IntrospectionResponse;
        try {
          const response = await oauth.introspectionRequest(
            provider.as,
            provider.client,
            provider.clientAuth,
            token,
            {
              ...provider.options,
              additionalParameters: { token_type_hint: 'access_token' },
            },
          );
          if (response.status === 429) throw new ProviderError('rate-limited', 'introspection: throttled');
          if (response.status >= 500)
            throw new ProviderError('unavailable', 'introspection: identity provider unavailable');
          result = await oauth.processIntrospectionResponse(provider.as, provider.client, response);
        } catch (err) {
          throw verificationFailure(err, 'introspection');
        }
        if (result.active !== true)
          return { ok: false, reason: 'the identity provider reports the token inactive' };
        const aud = Array.isArray(result.aud) ? result.aud : result.aud !== undefined ? [result.aud] : [];
        if (!audience || !aud.includes(audience))
          return { ok: false, reason: 'the token was issued for another audience' };
        const tokenType = typeof result.token_type === 'string' ? result.token_type.toLowerCase() : undefined;
        if (tokenType !== undefined && !['bearer', 'access_token', 'dpop'].includes(tokenType)) {
          return { ok: false, reason: 'the token is not an access token' };
        }
        return { ok: true, claims: result as unknown as Record<string, unknown> };
      },
      this.expiry(token),
    );
  }
}
