import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import { surfaceOf } from './error-handler.ts';

/** One options object for every API request (built once, not per request). */
const API_CORS: FastifyCorsOptions = {
  origin: true,
  credentials: true,
  methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
  allowedHeaders: [
    'Authorization',
    'Content-Type',
    'X-Medplum',
    'If-Match',
    'If-None-Exist',
    'If-None-Match',
    'If-Modified-Since',
    'Cache-Control',
    'Prefer',
  ],
  exposedHeaders: [
    'ETag',
    'Location',
    'Content-Location',
    'Last-Modified',
    'RateLimit-Limit',
    'RateLimit-Remaining',
    'RateLimit-Reset',
    'Retry-After',
    'Deprecation',
  ],
  maxAge: 3600,
};

/**
 * CORS (protocol.md §2): browser apps on other origins call the API with bearer tokens, and
 * `@medplum/core` sends `credentials: 'include'`, so the origin is echoed with
 * `Access-Control-Allow-Credentials: true` and `Vary: Origin`. Safe because no CORS route reads a
 * cookie; the hosted pages, which do, answer no CORS at all (OP-49).
 */
export async function registerCors(app: FastifyInstance): Promise<void> {
  await app.register(cors, {
    hook: 'onRequest',
    delegator: (request, callback) => {
      const url = request.url ?? '/';
      // GET /auth/login/:login reads the hosted pages' cookie: it must not answer other origins.
      if (surfaceOf(url) === 'page' || /^\/auth\/login\/[^/?]+/.test(url))
        return callback(null, { origin: false });
      callback(null, API_CORS);
    },
  });
}
