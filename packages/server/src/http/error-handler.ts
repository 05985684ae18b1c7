import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError, ServiceUnavailable } from '../errors/http-errors.ts';
import { operationOutcome } from '../errors/operation-outcome.ts';
import { OAuthError } from '../oauth/errors.ts';
import { SigningUnavailable } from '../oauth/signer.ts';
import { renderErrorPage } from '../pages/error-page.ts';

/** Which error format a route answers in (protocol.md §2 "Errors"). */
export type Surface = 'oauth' | 'fhir' | 'page';

const PAGE_PATHS = ['/oauth2/authorize', '/auth/external', '/signin'];
const PAGE_PREFIXES = PAGE_PATHS.map((p) => `${p}/`);

export function surfaceOf(url: string): Surface {
  // Asked for every request (CORS) and every response (page headers): no allocation but the path.
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (PAGE_PATHS.includes(path) || PAGE_PREFIXES.some((p) => path.startsWith(p))) return 'page';
  if (path.startsWith('/oauth2/')) return 'oauth';
  return 'fhir';
}

/** PostgreSQL / network failures that mean "storage is down", answered 503 rather than 500. */
const STORAGE_DOWN = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08003',
  '08006',
  '53300', // too_many_connections
  '57014', // query_canceled (statement_timeout)
]);

function isStorageDown(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && STORAGE_DOWN.has(code)) return true;
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
      message,
    )
  );
}

/**
 * Fastify's own client errors (unparseable body, wrong content type, body too large, schema
 * validation), translated to a status and a message safe to show.
 */
function clientError(err: FastifyError): { status: number; message: string } | undefined {
  if (err.validation) return { status: 400, message: `Invalid request: ${err.message}` };
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: 'Request body too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'Unsupported content type' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'Request body is empty' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, message: 'Request body is not valid JSON' };
  }
  if (
    err instanceof SyntaxError ||
    (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)
  ) {
    return { status: err.statusCode ?? 400, message: 'Malformed request' };
  }
  return undefined;
}

function sendOAuth(reply: FastifyReply, status: number, error: string, description: string, headers = {}) {
  return reply
    .code(status)
    .headers({ ...headers, 'cache-control': 'no-store', pragma: 'no-cache' })
    .type('application/json')
    .send({ error, error_description: description });
}

/** The one place errors become responses: OAuth JSON, OperationOutcome, or an HTML page. */
export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const surface = surfaceOf(request.url);

  if (err instanceof OAuthError && surface === 'fhir') {
    // Bearer failures on /fhir, /auth and /admin keep their status and WWW-Authenticate header
    // (RFC 6750 §3) but speak OperationOutcome, as those surfaces do.
    const code =
      err.status === 401
        ? 'login'
        : err.status === 403
          ? 'forbidden'
          : err.status === 429
            ? 'throttled'
            : 'invalid';
    return reply
      .code(err.status)
      .headers(err.headers)
      .type('application/fhir+json')
      .send(operationOutcome(code, err.description));
  }
  if (err instanceof OAuthError) {
    if (surface === 'page') {
      return reply
        .code(err.status)
        .headers(err.headers)
        .type('text/html; charset=utf-8')
        .send(renderErrorPage(err.description));
    }
    return sendOAuth(reply, err.status, err.error, err.description, err.headers);
  }

  let httpError: HttpError | undefined = err instanceof HttpError ? err : undefined;
  if (!httpError) {
    const client = clientError(err);
    if (client) {
      httpError = new HttpError(
        client.status,
        client.status === 413 ? 'too-costly' : 'invalid',
        client.message,
      );
    } else if (err instanceof SigningUnavailable) {
      request.log.error({ err }, 'signing unavailable');
      httpError = new ServiceUnavailable('Signing unavailable, try again');
    } else if (isStorageDown(err)) {
      // Not `code`: that name is redacted (an authorization code travels under it, http/logger.ts).
      request.log.warn({ errorCode: (err as { code?: string }).code }, 'storage unavailable');
      httpError = new ServiceUnavailable('Storage unavailable');
    } else {
      // The log gets the error; the caller never sees a stack, SQL or internal URL (RB-14).
      request.log.error({ err }, 'unhandled error');
      httpError = new HttpError(500, 'exception', 'Internal server error');
    }
  }

  if (surface === 'oauth') {
    const code =
      httpError.status === 503
        ? 'temporarily_unavailable'
        : httpError.status >= 500
          ? 'server_error'
          : 'invalid_request';
    return sendOAuth(reply, httpError.status, code, httpError.message, httpError.headers);
  }
  if (surface === 'page') {
    return reply
      .code(httpError.status)
      .headers(httpError.headers)
      .type('text/html; charset=utf-8')
      .send(renderErrorPage(httpError.message));
  }
  return reply
    .code(httpError.status)
    .headers(httpError.headers)
    .type('application/fhir+json')
    .send(operationOutcome(httpError.issueCode, httpError.message, httpError.expression));
}
