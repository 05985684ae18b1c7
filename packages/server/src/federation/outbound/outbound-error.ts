/**
 * The one error type of the outbound guard, with a stable, switchable `code` (the jose / oauth4webapi
 * discipline: callers branch on the code, never on the message).
 *
 * Messages are deliberately generic. They name the target host, which the administrator configured
 * and which helps an operator, but never the path's query string (an IdP URL may carry an API key or
 * a client secret there), never a response body and never a response status: an SSRF probe must not
 * learn anything about what answered (security-cases RP-49 "no body, status or timing oracle";
 * OWASP ASVS 5.0 16.5.1).
 */

/** Why an outbound call was refused or failed. */
export type OutboundErrorCode =
  /** The target resolves to (or is) an address the guard does not allow: private, loopback, metadata… */
  | 'blocked_address'
  /** The URL's scheme is not `https:` (or `http:` for an allow-listed host). */
  | 'blocked_scheme'
  /** The target answered 3xx; redirects are never followed (ASVS 5.0 15.3.2). */
  | 'redirect'
  /** The total deadline (connect + headers + body) passed. */
  | 'timeout'
  /** The decoded body exceeded the byte cap. */
  | 'too_large'
  /** Anything else on the wire: DNS failure, refused connection, TLS failure, reset. */
  | 'network';

const MESSAGES: Record<OutboundErrorCode, string> = {
  blocked_address: 'address not allowed',
  blocked_scheme: 'scheme not allowed',
  redirect: 'redirect not followed',
  timeout: 'deadline exceeded',
  too_large: 'response body too large',
  network: 'network error',
};

/**
 * Raised by the guarded fetch and its connector for every refusal or failure it owns.
 *
 * `cause`, when present, is the low-level error (DNS, TLS, socket) for server logs only; never copy
 * it into an answer to a client.
 */
export class OutboundError extends Error {
  override readonly name = 'OutboundError';

  /**
   * @param code - the stable reason, see {@link OutboundErrorCode}
   * @param host - the target host (no port, path or query); included in the message for operators
   * @param options - `cause` for logs
   */
  constructor(
    readonly code: OutboundErrorCode,
    readonly host: string,
    options?: { cause?: unknown },
  ) {
    super(`outbound request to ${host || '(invalid URL)'} failed: ${MESSAGES[code]}`, options);
  }
}

/** Finds an {@link OutboundError} in an error's `cause` chain (undici wraps connector errors in `TypeError: fetch failed`). */
export function findOutboundError(error: unknown): OutboundError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof OutboundError) return current;
    current = current.cause;
  }
  return undefined;
}
