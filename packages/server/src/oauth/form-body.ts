import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { InvalidRequest } from './errors.ts';

/** More parameters than any OAuth request carries; beyond it the request is refused (RB-03). */
const MAX_PARAMS = 100;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;
const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/**
 * Refuses malformed percent-encoding (RB-02): a `%` not followed by two hex digits, or escapes that
 * do not decode to UTF-8 (overlong `%C0%AF`, surrogates `%ED%A0%80`). The generic parsers keep such
 * sequences as literal text, so `code=%ZZ` would silently mean the three characters `%ZZ`.
 */
export function assertWellFormedEncoding(encoded: string): void {
  // Without a `%` there is no escape to check (the common case: every token request's own fields).
  if (encoded.includes('%')) {
    if (/%(?![0-9A-Fa-f]{2})/.test(encoded)) throw new InvalidRequest('malformed percent-encoding');
    try {
      decodeURIComponent(encoded);
    } catch {
      throw new InvalidRequest('malformed percent-encoding');
    }
  }
  let separators = 0;
  for (let i = encoded.indexOf('&'); i >= 0; i = encoded.indexOf('&', i + 1)) {
    if (++separators >= MAX_PARAMS) throw new InvalidRequest('too many parameters');
  }
}

/**
 * `application/x-www-form-urlencoded` (WHATWG URL §5.1), strictly: well-formed encoding and a bounded
 * number of parameters. Repeated names become arrays so that `parseOAuthParams` can refuse them
 * (RFC 6749 §3.1); the result has no prototype.
 */
export function parseStrictForm(body: string): Record<string, string | string[]> {
  assertWellFormedEncoding(body);
  const out: Record<string, string | string[]> = Object.create(null);
  for (const [key, value] of new URLSearchParams(body)) {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  }
  return out;
}

/**
 * RFC 6749 §3.2 / RB-01: endpoints that take form bodies only. Runs as an `onRequest` hook, before
 * any body parser, so a JSON, multipart or type-less body is a 400 `invalid_request` like every
 * other malformed OAuth request (not a generic 415).
 */
export function requireFormBody(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  const type = request.headers['content-type'] ?? '';
  if (!FORM_TYPE.test(type)) {
    done(new InvalidRequest('the request body must be application/x-www-form-urlencoded'));
    return;
  }
  done();
}

/**
 * Registers OAuth routes in a scope whose form bodies and query strings are parsed strictly
 * (RB-02, RB-03). Other routes (FHIR search, admin) keep the application's parser.
 */
export function withStrictForms(
  app: FastifyInstance,
  bodyLimit: number,
  register: (scope: FastifyInstance) => void,
): void {
  app.register(async (scope) => {
    scope.removeContentTypeParser('application/x-www-form-urlencoded');
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit },
      (_request, body, done) => {
        try {
          done(null, parseStrictForm(body as string));
        } catch (err) {
          done(err as Error, undefined);
        }
      },
    );
    // A callback hook, not an async one: it runs on every OAuth request and awaits nothing.
    scope.addHook('onRequest', (request, _reply, done) => {
      const q = request.url.indexOf('?');
      if (q < 0) {
        done();
        return;
      }
      try {
        const query = request.url.slice(q + 1);
        assertWellFormedEncoding(query);
        // No OAuth query parameter holds control characters (RFC 6749 Appendix A; OIDC nonce too).
        if (CONTROL.test(decodeURIComponent(query.replace(/\+/g, ' ')))) {
          throw new InvalidRequest('malformed query string');
        }
      } catch (err) {
        done(err as Error);
        return;
      }
      done();
    });
    register(scope);
  });
}
