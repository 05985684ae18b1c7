/**
 * Errors of the FHIR, /auth and /admin surfaces. Handlers throw them; the one error handler
 * (`http/error-handler.ts`) renders them as a FHIR OperationOutcome with the message in
 * `issue[0].details.text`. The message is written for the caller: never SQL, stacks or secrets.
 */

/** FHIR `IssueType` codes used by fedhir. */
export type IssueCode =
  | 'invalid'
  | 'required'
  | 'value'
  | 'structure'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'not-found'
  | 'deleted'
  | 'duplicate'
  | 'conflict'
  | 'too-costly'
  | 'throttled'
  | 'transient'
  | 'exception'
  | 'not-supported';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly issueCode: IssueCode,
    message: string,
    /** FHIRPath of the offending element, when one is known (`OperationOutcome.issue.expression`). */
    readonly expression?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequest extends HttpError {
  constructor(message: string, expression?: string, issueCode: IssueCode = 'invalid') {
    super(400, issueCode, message, expression);
  }
}

export class Unauthorized extends HttpError {
  constructor(message = 'Unauthorized', headers: Record<string, string> = { 'www-authenticate': 'Bearer' }) {
    super(401, 'login', message, undefined, headers);
  }
}

export class Forbidden extends HttpError {
  constructor(message = 'Forbidden', expression?: string) {
    super(403, 'forbidden', message, expression);
  }
}

export class NotFound extends HttpError {
  constructor(message = 'Not found') {
    super(404, 'not-found', message);
  }
}

export class Gone extends HttpError {
  constructor(message = 'Deleted') {
    super(410, 'deleted', message);
  }
}

export class Conflict extends HttpError {
  constructor(message: string, expression?: string) {
    super(409, 'duplicate', message, expression);
  }
}

export class PreconditionFailed extends HttpError {
  constructor(message: string) {
    super(412, 'conflict', message);
  }
}

export class TooManyRequests extends HttpError {
  constructor(retryAfterSeconds: number) {
    super(429, 'throttled', 'Too many requests', undefined, { 'retry-after': String(retryAfterSeconds) });
  }
}

export class ServiceUnavailable extends HttpError {
  constructor(message = 'Service unavailable', retryAfterSeconds = 5) {
    super(503, 'transient', message, undefined, { 'retry-after': String(retryAfterSeconds) });
  }
}
