import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessResolver, type AuthContext } from '../auth/access.ts';
import { digest } from '../crypto/digest.ts';
import { attempt } from '../http/attempts.ts';
import type { User } from '../model/types.ts';
import { clientKey } from '../rate-limit/failure-limiter.ts';
import type { Services } from '../services/container.ts';
import { identifyClient } from './client-auth.ts';
import { InsufficientScope, InvalidClient, InvalidRequest, InvalidToken } from './errors.ts';
import { requireFormBody, withStrictForms } from './form-body.ts';
import { type OAuthParams, parseOAuthParams } from './params.ts';
import { hasScope } from './scope.ts';

/**
 * RFC 6750 §2: the header, or (POST form only) `access_token` in the body — never the query (OP-45).
 * A token in the query is refused as a token that was sent: 401 `invalid_token` (RFC 6750 §3.1,
 * protocol.md §2), never accepted.
 */
function userinfoToken(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  if (query && Object.hasOwn(query, 'access_token')) {
    throw new InvalidToken('access_token must not be sent in the query string');
  }
  const header = AccessResolver.bearerToken(request);
  if (header) return header;
  if (request.method === 'POST' && request.body && typeof request.body === 'object') {
    const params = parseOAuthParams(request.body);
    return params.access_token;
  }
  return undefined;
}

async function resolveOrInvalid(services: Services, token: string | undefined): Promise<AuthContext> {
  if (!token) throw new InvalidToken('authentication required', false);
  return services.access.resolve(token);
}

/** Looks a token up for introspection/revocation: our access token (JWT) or a refresh token. */
async function lookupToken(services: Services, token: string) {
  if (token.split('.').length === 3) {
    try {
      const claims = await services.tokens.verifyAccessToken(token);
      return { kind: 'access' as const, loginId: claims.login_id, clientId: claims.client_id, claims };
    } catch {
      return undefined;
    }
  }
  const rows = await services.db.query<{
    login_id: string;
    client_id: string | null;
    expires_at: Date;
    rotated_at: Date | null;
    scope: string;
  }>('SELECT login_id, client_id, expires_at, rotated_at, scope FROM refresh_token WHERE digest = $1', [
    digest(token),
  ]);
  const row = rows[0];
  if (!row || row.rotated_at !== null || new Date(row.expires_at).getTime() <= Date.now()) return undefined;
  return {
    kind: 'refresh' as const,
    loginId: row.login_id,
    clientId: row.client_id ?? undefined,
    scope: row.scope,
    expiresAt: new Date(row.expires_at),
  };
}

/**
 * Client authentication for introspection and revocation, counted by the failure limiter (OP-46:
 * "rate-limited"). Introspection always needs a secret; revocation accepts `client_id` alone for
 * clients that do not require authentication (RFC 7009 §2.1).
 */
async function endpointClient(
  services: Services,
  request: FastifyRequest,
  params: OAuthParams,
  action: 'introspect' | 'revoke',
  secretRequired: boolean,
) {
  const claimed = params.client_id;
  return attempt(
    services,
    {
      action,
      ip: request.ip,
      keys: claimed ? [clientKey(claimed)] : [],
      clientId: claimed,
      surface: 'oauth',
    },
    async () => {
      const identity = await identifyClient(services.clients, {
        authorization: request.headers.authorization,
        clientId: params.client_id,
        clientSecret: params.client_secret,
        clientAssertion: params.client_assertion,
      });
      const client = identity.client;
      if (!client || ((secretRequired || client.requireClientAuth) && !identity.authenticated)) {
        throw new InvalidClient('client authentication required', identity.usedBasic);
      }
      return { ...identity, client };
    },
  );
}

/** /oauth2/userinfo, /introspect, /revoke, /logout (protocol.md §2 "Userinfo, introspection, revocation"). */
export function registerSessionEndpoints(app: FastifyInstance, services: Services): void {
  withStrictForms(app, services.config.bodyLimit, (scope) => registerRoutes(scope, services));
}

function registerRoutes(app: FastifyInstance, services: Services): void {
  const userinfo = async (request: FastifyRequest) => {
    const auth = await resolveOrInvalid(services, userinfoToken(request));
    if (!hasScope(auth.claims.scope, 'openid'))
      throw new InsufficientScope('userinfo requires the openid scope');
    const claims: Record<string, unknown> = { sub: auth.claims.sub };
    claims.fhirUser = `${services.config.baseUrl}fhir/R4/${auth.membership.profile.reference}`;
    if (auth.membership.user.reference.startsWith('User/')) {
      const user = await services.repo.read<User>('User', auth.claims.sub);
      if (user && hasScope(auth.claims.scope, 'profile')) {
        claims.name = `${user.firstName} ${user.lastName}`.trim();
        claims.given_name = user.firstName;
        claims.family_name = user.lastName;
      }
      if (user?.email && hasScope(auth.claims.scope, 'email')) {
        claims.email = user.email;
        claims.email_verified = user.emailVerified === true;
      }
    }
    return claims;
  };
  app.get('/oauth2/userinfo', async (request, reply) =>
    reply.header('cache-control', 'no-store').send(await userinfo(request)),
  );
  app.post('/oauth2/userinfo', async (request, reply) =>
    reply.header('cache-control', 'no-store').send(await userinfo(request)),
  );

  // RFC 7662: client authentication required; a client sees only its own tokens (OP-46).
  app.post('/oauth2/introspect', { onRequest: requireFormBody }, async (request, reply) => {
    const params = parseOAuthParams(request.body);
    const identity = await endpointClient(services, request, params, 'introspect', true);
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' });
    const token = params.token;
    if (!token) throw new InvalidRequest('token is required');
    const found = await lookupToken(services, token);
    if (!found || found.clientId !== identity.client.id || !(await services.logins.live(found.loginId))) {
      return { active: false };
    }
    if (found.kind === 'access') {
      const c = found.claims;
      return {
        active: true,
        token_type: 'Bearer',
        scope: c.scope,
        client_id: c.client_id,
        sub: c.sub,
        username: c.username,
        exp: c.exp,
        iat: c.iat,
        nbf: c.nbf,
        iss: c.iss,
        aud: c.aud,
        jti: c.jti,
      };
    }
    return {
      active: true,
      token_type: 'refresh_token',
      scope: found.scope,
      client_id: found.clientId,
      exp: Math.floor(found.expiresAt.getTime() / 1000),
    };
  });

  // RFC 7009: revoking an access or refresh token revokes its Login; unknown tokens answer 200 (OP-47).
  app.post('/oauth2/revoke', { onRequest: requireFormBody }, async (request, reply) => {
    const params = parseOAuthParams(request.body);
    const identity = await endpointClient(services, request, params, 'revoke', false);
    const token = params.token;
    if (!token) throw new InvalidRequest('token is required');
    const found = await lookupToken(services, token);
    // Another client's token stays valid: a documented 200 no-op (RFC 7009 §2.1, OP-48).
    if (found && found.clientId === identity.client.id) {
      await services.logins.revoke(found.loginId);
      services.audit.record({
        action: 'revoke',
        outcome: 'success',
        ip: request.ip,
        clientId: identity.client.id,
        loginId: found.loginId,
      });
    }
    return reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' }).send({});
  });

  // The SDK's signOut: POST with the bearer token and `{}`; revokes that Login and answers 200 {}.
  const logout = async (request: FastifyRequest) => {
    const token = AccessResolver.bearerToken(request);
    if (token) {
      try {
        const claims = await services.tokens.verifyAccessToken(token);
        await services.logins.revoke(claims.login_id);
        services.audit.record({
          action: 'logout',
          outcome: 'success',
          ip: request.ip,
          loginId: claims.login_id,
          userId: claims.sub,
          ...(claims.client_id ? { clientId: claims.client_id } : {}),
        });
      } catch {
        // An expired or unknown token has nothing left to revoke: logout still succeeds.
      }
    }
    return {};
  };
  app.post('/oauth2/logout', async (request, reply) =>
    reply.header('cache-control', 'no-store').send(await logout(request)),
  );
  app.get('/oauth2/logout', async (request, reply) => {
    await logout(request);
    return reply
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out · fedhir</title></head><body><main><h1>You are signed out</h1></main></body></html>',
      );
  });
}
