import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { InvalidToken } from '../oauth/errors.ts';
import type { Services } from '../services/container.ts';
import { AccessResolver, type AuthContext } from './access.ts';

/**
 * Establishes the caller of a protected route from its bearer token, or throws 401 with
 * `WWW-Authenticate: Bearer` (adding `error="invalid_token"` only when a token was sent, RFC 6750 §3).
 */
export async function requireAuth(services: Services, request: FastifyRequest): Promise<AuthContext> {
  const token = AccessResolver.bearerToken(request);
  if (!token) throw new InvalidToken('authentication required', false);
  return services.access.resolve(token);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by {@link authenticate} on protected routes. */
    auth: AuthContext | undefined;
  }
}

/**
 * An `onRequest` hook that authenticates before the body is even parsed: an unauthenticated caller
 * gets 401, never a validation error about a body it was not allowed to send.
 */
export function authenticate(services: Services): onRequestAsyncHookHandler {
  return async (request) => {
    request.auth = await requireAuth(services, request);
  };
}

/** The caller of a route that has the {@link authenticate} hook. */
export function authOf(request: FastifyRequest): AuthContext {
  if (!request.auth) throw new InvalidToken('authentication required', false);
  return request.auth;
}
