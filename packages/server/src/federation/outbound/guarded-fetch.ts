/**
 * The one door through which fedhir talks to external identity providers: discovery, JWKS (jose's
 * `[customFetch]`), token, userinfo and introspection (oauth4webapi's `[customFetch]`), and the admin
 * Test/Discover buttons (protocol.md §7.6, §8 "Outbound guard"; security-cases RP-19, RP-49..51,
 * TX-15..18).
 *
 * Every call:
 * 1. passes {@link parseOutboundUrl} (scheme, literal addresses, internal names);
 * 2. connects only to addresses the {@link createCheckedLookup checked lookup} resolved and allowed,
 *    so DNS rebinding between check and connect is impossible;
 * 3. never follows a redirect (ASVS 5.0 15.3.2): a 3xx is an error;
 * 4. finishes connect, headers and body within one deadline, and buffers at most `maxBodyBytes`
 *    decoded bytes (ASVS 5.0 13.1.3);
 * 5. verifies TLS certificates: `rejectUnauthorized` is left at its secure default, always (RP-50).
 */
import { Agent } from 'undici';
import { type AllowList, parseAllowList } from './allow-list.ts';
import { createCheckedLookup, type Resolver, systemResolver } from './checked-lookup.ts';
import { findOutboundError, OutboundError } from './outbound-error.ts';
import { readDecodedBody } from './read-decoded-body.ts';
import { parseOutboundUrl } from './validate-outbound-url.ts';

/** Options of {@link createGuardedFetch}. */
export interface GuardedFetchOptions {
  /** `ALLOW_PRIVATE_IDP_URLS` entries (host names, IPs, CIDRs) or a parsed {@link AllowList}. */
  allow: readonly string[] | AllowList;
  /** Total deadline of one call, connect + headers + body, in ms. Default 5000 (protocol.md §7.6). */
  timeoutMs?: number;
  /** Cap on the decoded response body, in bytes. Default 1 MiB (protocol.md §7.6). */
  maxBodyBytes?: number;
  /** Host-name resolver; default `dns.promises.lookup(host, { all: true })`. Tests inject a stub. */
  resolver?: Resolver;
}

/**
 * A `fetch`-compatible function behind the outbound guard. Pass it as oauth4webapi's
 * `[customFetch]` and jose's `createRemoteJWKSet(url, { [customFetch]: … })`.
 *
 * It resolves to a `Response` whose body is already buffered (so `.json()` / `.text()` work and
 * cannot block), with the upstream status and headers (minus `Content-Encoding` / `Content-Length`
 * when the body was decoded). It rejects with an {@link OutboundError}, except when the caller's own
 * `signal` aborts, which rejects with that signal's reason as `fetch` does.
 */
export interface GuardedFetch {
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** Closes the pooled keep-alive connections (server shutdown, tests). */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
// Statuses whose Response may not carry a body (Fetch standard "null body status").
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
// undici's own timer codes, a backstop behind our deadline.
const UNDICI_TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Creates a guarded fetch with its own keep-alive connection pool. Create one per process (or per
 * allow list) and reuse it: the pool is what keeps token exchange off the TCP/TLS handshake path.
 *
 * @throws TypeError when an allow-list entry or a numeric option is invalid.
 * @see protocol.md §7.6; OWASP ASVS 5.0 1.3.6, 13.1.3, 15.3.2, 16.5.1
 */
export function createGuardedFetch(options: GuardedFetchOptions): GuardedFetch {
  const allow = Array.isArray(options.allow) ? parseAllowList(options.allow) : (options.allow as AllowList);
  const timeoutMs = positiveInteger(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
  const maxBodyBytes = positiveInteger(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes');
  const agent = new Agent({
    // `lookup` is handed to net.connect / tls.connect. undici still sends SNI and Host for the URL's
    // host name, so TLS verifies the certificate against the name while the socket goes to the
    // checked IP. No `rejectUnauthorized` here: the secure default stays (RFC 9700 §2.6, RP-50).
    connect: { lookup: createCheckedLookup(options.resolver ?? systemResolver, allow), timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  const guarded = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = await toRequestParts(input, init);
    const parsed = parseOutboundUrl(request.url, allow);
    if (!parsed.ok) throw new OutboundError(parsed.code, parsed.host);
    const { host, url } = parsed;

    // One deadline for the whole exchange, including DNS, connect, TLS and every body byte: undici's
    // per-phase timers alone would let a slow drip (1 byte per bodyTimeout) run forever (RP-19, TX-15).
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new OutboundError('timeout', host)), timeoutMs);
    // The caller's signal (oauth4webapi and jose pass a fresh AbortSignal.timeout per call) is
    // forwarded by hand rather than with AbortSignal.any, which leaks composite signals on this hot
    // path in current Node releases (nodejs/node#54614, #55351).
    const callerSignal = request.signal;
    const onCallerAbort = () => deadline.abort(callerSignal?.reason);
    if (callerSignal?.aborted) onCallerAbort();
    else callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      // undici's dispatcher API rather than its WHATWG fetch: the same connection pool and socket
      // options, without fetch's Request/Response/stream machinery on the token-exchange hot path.
      // It never follows redirects by itself.
      const { statusCode, headers, body } = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: (request.method ?? 'GET').toUpperCase() as 'GET',
        headers: requestHeaders(request),
        body: requestBody(request.body),
        signal: deadline.signal,
      });
      // Never follow: a public IdP answering 30x to an internal address is SSRF (RP-51, TX-18).
      if (statusCode >= 300 && statusCode < 400) throw new OutboundError('redirect', host);
      const contentLength = Number(single(headers['content-length']) ?? Number.NaN);
      const coding = single(headers['content-encoding']);
      if (!coding && contentLength > maxBodyBytes) throw new OutboundError('too_large', host);
      const decoded = await readDecodedBody(body, coding, maxBodyBytes, host);
      return rebuild(statusCode, headerPairs(headers), decoded);
    } catch (error) {
      // Abort on every failure so undici destroys the socket instead of pooling a half-read one.
      deadline.abort();
      throw translate(error, host, callerSignal);
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
  };
  return Object.assign(guarded, { close: () => agent.close() });
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

interface RequestParts {
  url: string;
  method: string | undefined;
  headers: HeadersInit | undefined;
  body: BodyInit | null | undefined;
  signal: AbortSignal | undefined;
}

/** Flattens `fetch`'s (input, init) pair; a `Request` body is buffered (IdP requests are small). */
async function toRequestParts(
  input: string | URL | Request,
  init: RequestInit | undefined,
): Promise<RequestParts> {
  if (typeof input === 'string' || input instanceof URL) {
    return {
      url: String(input),
      method: init?.method,
      headers: init?.headers,
      body: init?.body,
      signal: init?.signal ?? undefined,
    };
  }
  const hasBody = input.body !== null && init?.body === undefined;
  return {
    url: input.url,
    method: init?.method ?? input.method,
    headers: init?.headers ?? input.headers,
    body: hasBody ? await input.arrayBuffer() : init?.body,
    signal: init?.signal ?? input.signal,
  };
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value.join(', ') : value);

function* headerPairs(headers: Record<string, string | string[] | undefined>): Iterable<[string, string]> {
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) yield [name, v];
    else yield [name, value];
  }
}

/**
 * The request's headers as `fetch` would send them: the caller's, plus the defaults fetch adds
 * (an `Accept-Encoding` it can decode, the form Content-Type of a URLSearchParams body).
 */
function requestHeaders(request: RequestParts): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(request.headers).forEach((value, name) => {
    out[name] = value;
  });
  out['accept-encoding'] ??= 'gzip, deflate, br';
  if (request.body instanceof URLSearchParams)
    out['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
  return out;
}

/** The request bodies identity-provider calls use: text, form parameters or bytes. */
function requestBody(body: BodyInit | null | undefined): string | Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('outbound request bodies are strings, URLSearchParams or bytes');
}

/** A plain `Response` over the buffered bytes, with the upstream status and headers. */
function rebuild(status: number, upstream: Iterable<[string, string]>, body: Uint8Array<ArrayBuffer>) {
  const headers = new Headers();
  let decoded = false;
  for (const [name, value] of upstream) {
    if (name === 'content-encoding') decoded = true;
    headers.append(name, value);
  }
  if (decoded) {
    // The bytes are the decoded body now; the upstream coding and length no longer describe them.
    headers.delete('content-encoding');
    headers.delete('content-length');
  }
  return new Response(NULL_BODY_STATUSES.has(status) ? null : body, { status, headers });
}

/** Maps whatever undici or the reader threw to an {@link OutboundError}, or the caller's abort reason. */
function translate(error: unknown, host: string, callerSignal: AbortSignal | undefined): unknown {
  const known = findOutboundError(error);
  if (known) return known;
  // The caller's own signal (e.g. jose's AbortSignal.timeout) keeps fetch semantics: reject with its
  // reason, so libraries that map their own TimeoutError keep working.
  if (callerSignal?.aborted) return callerSignal.reason;
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && UNDICI_TIMEOUT_CODES.has(code)) {
      return new OutboundError('timeout', host, { cause: error });
    }
    current = current.cause;
  }
  return new OutboundError('network', host, { cause: error });
}
