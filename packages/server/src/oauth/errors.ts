/**
 * OAuth 2.0 errors: one class per RFC error code, rendered in one place (`http/error-handler.ts`)
 * as `{error, error_description}` with `Cache-Control: no-store` (RFC 6749 §5.2).
 */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = new.target.name;
  }
}

/** RFC 6749 §5.2. */
export class InvalidRequest extends OAuthError {
  constructor(description: string, status = 400, headers: Record<string, string> = {}) {
    super(status, 'invalid_request', description, headers);
  }
}

/**
 * RFC 6749 §5.2: 401, with `WWW-Authenticate: Basic` when the client tried the Authorization header.
 */
export class InvalidClient extends OAuthError {
  constructor(description = 'client authentication failed', usedBasic = false) {
    super(
      401,
      'invalid_client',
      description,
      usedBasic ? { 'www-authenticate': 'Basic realm="fedhir"' } : {},
    );
  }
}

export class InvalidGrant extends OAuthError {
  constructor(description: string) {
    super(400, 'invalid_grant', description);
  }
}

export class UnauthorizedClient extends OAuthError {
  constructor(description: string) {
    super(400, 'unauthorized_client', description);
  }
}

export class UnsupportedGrantType extends OAuthError {
  constructor(description = 'unsupported grant_type') {
    super(400, 'unsupported_grant_type', description);
  }
}

export class InvalidScope extends OAuthError {
  constructor(description: string) {
    super(400, 'invalid_scope', description);
  }
}

/** RFC 8693 §2.2.2. */
export class InvalidTarget extends OAuthError {
  constructor(description: string) {
    super(400, 'invalid_target', description);
  }
}

/** RFC 6749 §4.1.2.1; answered with 503 and `Retry-After` when an upstream provider fails. */
export class TemporarilyUnavailable extends OAuthError {
  constructor(description: string, retryAfterSeconds = 5) {
    super(503, 'temporarily_unavailable', description, { 'retry-after': String(retryAfterSeconds) });
  }
}

/** RFC 6750 §3.1: a bearer token that is missing, expired, revoked or malformed. */
export class InvalidToken extends OAuthError {
  constructor(description = 'invalid token', tokenWasSent = true) {
    super(401, 'invalid_token', description, {
      'www-authenticate': tokenWasSent ? `Bearer error="invalid_token"` : 'Bearer',
    });
  }
}

/** RFC 6750 §3.1. */
export class InsufficientScope extends OAuthError {
  constructor(description = 'insufficient scope') {
    super(403, 'insufficient_scope', description, {
      'www-authenticate': 'Bearer error="insufficient_scope"',
    });
  }
}

export class TooManyAttempts extends OAuthError {
  constructor(retryAfterSeconds: number) {
    super(429, 'invalid_request', 'too many failed attempts; retry later', {
      'retry-after': String(retryAfterSeconds),
    });
  }
}
