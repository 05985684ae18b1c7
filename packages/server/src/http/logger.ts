import type { FastifyServerOptions } from 'fastify';
import type { LogLevel } from '../config.ts';

/** Field names whose values are secrets wherever they appear in a logged object. */
export const SECRET_FIELDS = [
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  'code',
  'refresh_token',
  'access_token',
  'subject_token',
];

/**
 * Fastify's pino logger, shaped so that secrets never reach the log: request lines carry the path
 * without its query string (codes, states and tokens travel there), and headers are not logged.
 * Request bodies are never logged.
 */
export function loggerOptions(level: LogLevel): FastifyServerOptions['logger'] {
  return {
    level,
    redact: {
      // Each name at the top of a line's object and one level down (`*.name` alone does not
      // match a top-level key).
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        ...SECRET_FIELDS.flatMap((name) => [name, `*.${name}`]),
      ],
      censor: '[redacted]',
    },
    serializers: {
      req(request: { method: string; url: string; ip?: string; id?: string }) {
        return { method: request.method, path: request.url.split('?', 1)[0], ip: request.ip };
      },
      res(reply: { statusCode: number }) {
        return { statusCode: reply.statusCode };
      },
    },
  };
}
