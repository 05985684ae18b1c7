import type { AuditAction } from '../audit/audit-log.ts';
import { HttpError } from '../errors/http-errors.ts';
import { OAuthError } from '../oauth/errors.ts';
import { ipKey } from '../rate-limit/failure-limiter.ts';
import { httpTooManyRequests, oauthTooManyAttempts } from '../rate-limit/headers.ts';
import type { Services } from '../services/container.ts';

export interface AttemptContext {
  action: AuditAction;
  ip: string;
  /** Limiter keys besides the IP (client, account). */
  keys: string[];
  clientId?: string | undefined;
  /** Which error format a refusal takes. */
  surface: 'oauth' | 'http';
}

/** Upstream faults and throttling are not the caller's failures: they never count (protocol.md §7.9). */
function isCallerFailure(err: unknown): boolean {
  if (err instanceof OAuthError) return err.status === 400 || err.status === 401;
  if (err instanceof HttpError) return err.status === 400 || err.status === 401;
  return false;
}

function reasonOf(err: unknown): string {
  if (err instanceof OAuthError) return err.error;
  if (err instanceof HttpError) return err.issueCode;
  return 'error';
}

/**
 * One authentication attempt: refused up front when its IP, client or account has spent its budget
 * of failures (429 with RateLimit headers, protocol.md §7.9), counted when it fails for the caller's
 * fault, and written to the audit trail either way. Successes are never counted, so legitimate load
 * is not throttled.
 */
export async function attempt<T>(
  services: Services,
  context: AttemptContext,
  run: () => Promise<T>,
  describe: (result: T) => { userId?: string; loginId?: string; projectId?: string } = () => ({}),
): Promise<T> {
  const keys = [ipKey(context.ip), ...context.keys];
  const decision = services.limiter.check(keys);
  if (!decision.allowed) {
    services.audit.record({
      action: context.action,
      outcome: 'minor-failure',
      reason: 'rate limited',
      ip: context.ip,
    });
    throw context.surface === 'oauth' ? oauthTooManyAttempts(decision) : httpTooManyRequests(decision);
  }
  try {
    const result = await run();
    const who = describe(result);
    services.audit.record({
      action: context.action,
      outcome: 'success',
      ip: context.ip,
      clientId: context.clientId,
      userId: who.userId,
      loginId: who.loginId,
      projectId: who.projectId,
    });
    return result;
  } catch (err) {
    if (isCallerFailure(err)) services.limiter.recordFailure(keys);
    services.audit.record({
      action: context.action,
      outcome: 'minor-failure',
      reason: reasonOf(err),
      ip: context.ip,
      clientId: context.clientId,
    });
    throw err;
  }
}
