import { TooManyRequests } from '../errors/http-errors.ts';
import { TooManyAttempts } from '../oauth/errors.ts';
import type { LimitRefusal } from './failure-limiter.ts';

/** What a 429 needs to describe: the refusing budget and when it admits the next attempt. */
export type RateLimitInfo = Pick<LimitRefusal, 'limit' | 'retryAfterSeconds'>;

/**
 * Header fields of a 429 answer (RFC 6585 §4), lower-cased as Fastify sends them:
 *
 * - `Retry-After` (RFC 9110 §10.2.3): delay-seconds, the one field every client understands.
 * - `RateLimit-Limit`, `RateLimit-Remaining: 0`, `RateLimit-Reset` (delta-seconds):
 *   draft-ietf-httpapi-ratelimit-headers-06, the form most client libraries and gateways parse.
 * - `RateLimit: "failures";r=0;t=<seconds>`: the same in the Structured-Field syntax of the later
 *   revisions of that draft (-08 onwards), which replaced the three fields with this one.
 *
 * Only refusals carry them: the budgets count failures, so advertising a remaining budget on
 * successful answers would tell a guesser how many tries are left (ASVS 5.0 V6.3.1).
 */
export function rateLimitHeaders(info: RateLimitInfo): Record<string, string> {
  const seconds = String(Math.max(1, Math.ceil(info.retryAfterSeconds)));
  return {
    'retry-after': seconds,
    'ratelimit-limit': String(info.limit),
    'ratelimit-remaining': '0',
    'ratelimit-reset': seconds,
    ratelimit: `"failures";r=0;t=${seconds}`,
  };
}

/**
 * The refusal of an OAuth endpoint (`/oauth2/token`, `/oauth2/revoke`, …): 429 with the OAuth error
 * body (RFC 6749 §5.2 shape) and the rate-limit fields.
 */
export function oauthTooManyAttempts(info: RateLimitInfo): TooManyAttempts {
  const error = new TooManyAttempts(info.retryAfterSeconds);
  Object.assign(error.headers, rateLimitHeaders(info));
  return error;
}

/** The refusal of an `/auth/*` endpoint: 429 OperationOutcome (`throttled`) with the fields. */
export function httpTooManyRequests(info: RateLimitInfo): TooManyRequests {
  const error = new TooManyRequests(info.retryAfterSeconds);
  Object.assign(error.headers, rateLimitHeaders(info));
  return error;
}
