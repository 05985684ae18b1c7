import {
  InvalidRequest,
  OAuthError,
  TemporarilyUnavailable,
  UnauthorizedClient,
} from '../../oauth/errors.ts';
import { MappingError } from '../mapping.ts';
import { findOutboundError } from '../outbound/outbound-error.ts';
import { ProviderError, providerFailure } from '../provider.ts';

/** Upper bound on a Retry-After passed on from a provider (seconds). */
const MAX_RETRY_AFTER = 60;

/**
 * RFC 8693 §2.2.2 and protocol.md §4 "Errors": a subject token the provider rejects, or one that maps
 * to no acceptable user, is `invalid_request` with a reason; a provider that is down is `503
 * temporarily_unavailable`; one that throttles is 429. Never a 500, never an upstream body.
 */
export function exchangeError(err: unknown): OAuthError | undefined {
  if (err instanceof OAuthError) return err;
  if (err instanceof MappingError) return new InvalidRequest(err.message);
  if (err instanceof ProviderError) {
    switch (err.kind) {
      case 'unavailable':
        return new TemporarilyUnavailable('identity provider unavailable', 5);
      case 'rate-limited': {
        const retry = Math.min(MAX_RETRY_AFTER, Math.max(1, err.retryAfterSeconds ?? 5));
        return new InvalidRequest('identity provider is throttling requests; retry later', 429, {
          'retry-after': String(retry),
        });
      }
      case 'misconfigured':
        return new UnauthorizedClient(`identity provider misconfigured: ${err.message}`);
      case 'rejected':
        return new InvalidRequest(`subject token rejected: ${err.message}`);
      default:
        return new InvalidRequest('identity provider answered unexpectedly');
    }
  }
  return undefined;
}

/**
 * An outbound failure on a subject-token verification path (userinfo, jwks, introspection). A
 * provider address that the guard refuses at connect time (a name resolving to a private address,
 * protocol.md §7.6) leaves the subject token unverifiable, as a redirect to such an address does:
 * `invalid_request` (RFC 8693 §2.2.2; TX-18), not a fault of the client. Anything else as
 * {@link providerFailure}.
 */
export function verificationFailure(err: unknown, what: string): Error {
  const outbound = findOutboundError(err);
  if (outbound?.code === 'blocked_address' || outbound?.code === 'blocked_scheme') {
    return new InvalidRequest(`${what}: the identity provider address is not allowed`);
  }
  return providerFailure(outbound ?? err, what);
}
