import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { surfaceOf } from './error-handler.ts';

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'X-Medplum',
  'If-Match',
  'If-None-Exist',
  'If-None-Match',
  'If-Modified-Since',
  'Cache-Control',
  'Prefer',
].join(', ');
const EXPOSED_HEADERS = [
  'ETag',
  'Location',
  'Content-Location',
  'Last-Modified',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
  'Deprecation',
].join(', ');
/** How long a browser may reuse a preflight answer (seconds). */
const PREFLIGHT_MAX_AGE = '3600';

/** GET /auth/login/:login reads the hosted pages' cookie (the sign-in page polls it). */
const COOKIE_READING_API = /^\/auth\/login\/[^/?]+/;

/** Hosted pages (and the one API route that reads their cookie) answer other origins nothing. */
function corsAllowed(url: string): boolean {
  return surfaceOf(url) !== 'page' && !COOKIE_READING_API.test(url);
}

/**
 * CORS (protocol.md §2, Fetch standard §3.2): browser apps on other origins call the API with bearer
 * tokens, and `@medplum/core` sends `credentials: 'include'`, so the origin is echoed with
 * `Access-Control-Allow-Credentials: true` and `Vary: Origin`. Safe because no CORS route reads a
 * cookie; the hosted pages, which do, answer no CORS at all (OP-49).
 *
 * One synchronous `onRequest` hook with its header values built once. It replaces @fastify/cors,
 * whose per-request option merging (two object spreads of ~16 properties, a header list joined
 * per request) measured ~35 µs of event-loop CPU per request with a URL-dependent rule — about a
 * tenth of a client_credentials token's cost (docs/performance.md).
 */
export function registerCors(app: FastifyInstance): void {
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (!corsAllowed(request.url)) {
      done();
      return;
    }
    // The answer depends on Origin whether or not this request sent one: caches must key on it.
    reply.header('vary', 'Origin');
    const origin = request.headers.origin;
    if (origin === undefined) {
      done();
      return;
    }
    reply.header('access-control-allow-origin', origin);
    reply.header('access-control-allow-credentials', 'true');
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      // A preflight (Fetch §4.8) is answered here, before any authentication hook: the browser sends
      // no credentials with it.
      reply
        .code(204)
        .header('access-control-allow-methods', ALLOWED_METHODS)
        .header('access-control-allow-headers', ALLOWED_HEADERS)
        .header('access-control-max-age', PREFLIGHT_MAX_AGE)
        .header('content-length', '0')
        .send();
      return;
    }
    reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    done();
  });
  // Routing runs before onRequest hooks: without an OPTIONS route a preflight would be a 404 before
  // the hook could answer it. An OPTIONS request the hook did not answer is the usual 404.
  app.options('*', (_request, reply) => reply.callNotFound());
}
