import type { FastifyServerOptions } from 'fastify';
import type { LogLevel } from '../config.ts';

/**
 * Fastify's pino logger, shaped so that secrets never reach the log: request lines carry the path
 * without its query string (codes, states and tokens travel there), and headers are not logged.
 * Request bodies are never logged.
 */
export function loggerOptions(level: LogLevel): FastifyServerOptions['logger'] {
  return {
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        '*.password',
        '*.secret',
        '*.clientSecret',
        '*.client_secret',
        '*.code',
        '*.refresh_token',
        '*.access_token',
        '*.subject_token',
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
