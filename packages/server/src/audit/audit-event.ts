import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { Reference, Resource } from '../model/types.ts';
import { isUuid } from '../storage/resources.ts';

/**
 * What fedhir audits (protocol.md §1: "AuditEvent for every login, exchange, refresh, logout and
 * failure"; ASVS 4.0 7.1.3 and 7.2.1: log every authentication decision, success and failure).
 */
export type AuditAction =
  | 'login'
  | 'token'
  | 'refresh'
  | 'revoke'
  | 'logout'
  | 'exchange'
  | 'external-login'
  | 'client-credentials'
  | 'userinfo'
  | 'introspect';

/**
 * FHIR R4 `AuditEvent.outcome`: `success` → '0', `minor-failure` → '4' (the request failed: a wrong
 * password, a bad code), `serious-failure` → '8' (the request failed in a way that needs attention:
 * refresh-token reuse revoking a family, a code redeemed twice).
 */
export type AuditOutcome = 'success' | 'minor-failure' | 'serious-failure';

/**
 * One event as the routes describe it. Deliberately closed and typed by identifier, never by value:
 * there is no field for a token, a code, a secret, a password or an attempted user name, so none can
 * be passed by accident (protocol.md §1 "Secrets never appear in logs"; ASVS 4.0 7.1.1–7.1.2). The ids must be the UUIDs of stored resources: anything else (say, a client_id that
 * an attacker typed) is left out of the event rather than stored.
 */
export interface AuditInput {
  readonly action: AuditAction;
  readonly outcome: AuditOutcome;
  /**
   * A short, fixed reason phrase written by fedhir ("invalid password", "code already used"), never
   * a value from the request. Cut to 200 characters; anything shaped like a token is redacted.
   */
  readonly reason?: string;
  /** The caller's address as Fastify resolved it (TRUST_PROXY decides whether proxies count). */
  readonly ip?: string;
  /** The User id, when one is known. */
  readonly userId?: string;
  /** The ClientApplication id, when one is known. */
  readonly clientId?: string;
  /** The Login (session) id, when one is known. */
  readonly loginId?: string;
  /** The Project id: the event is then project-owned (`meta.project`), visible to its admins. */
  readonly projectId?: string;
  /** When it happened; default: when {@link toAuditEvent} runs. */
  readonly time?: Date;
}

interface Coding {
  system: string;
  code: string;
  display?: string;
}

export interface AuditEventAgent {
  who?: Reference;
  requestor: boolean;
  network?: { address: string; type: '1' | '2' };
}

/** The fields of the FHIR R4 AuditEvent fedhir writes. */
export type AuditEventContent = {
  resourceType: 'AuditEvent';
  type: Coding;
  subtype: Coding[];
  action: 'E';
  recorded: string;
  outcome: '0' | '4' | '8';
  outcomeDesc?: string;
  agent: AuditEventAgent[];
  source: { observer: { display: string }; type?: Coding[] };
  entity?: { what: Reference }[];
};

/** A stored AuditEvent. */
export interface AuditEvent extends Resource, AuditEventContent {
  resourceType: 'AuditEvent';
}

/** An AuditEvent about to be stored: its id is chosen, its version not yet. */
export type NewAuditEvent = AuditEventContent & { id: string; meta?: { project?: string } };

export const DCM_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';
/** fedhir's own code system naming the action (AuditEvent.subtype). */
export const AUDIT_ACTION_SYSTEM = 'urn:fedhir:audit-action';
const SECURITY_SOURCE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/security-source-type';

const USER_AUTHENTICATION: Coding = { system: DCM_SYSTEM, code: '110114', display: 'User Authentication' };
const QUERY: Coding = { system: DCM_SYSTEM, code: '110112', display: 'Query' };
const DCM_LOGIN: Coding = { system: DCM_SYSTEM, code: '110122', display: 'Login' };
const DCM_LOGOUT: Coding = { system: DCM_SYSTEM, code: '110123', display: 'Logout' };

/** DICOM type and the standard subtype (DCM 110122 Login / 110123 Logout, as IHE BALP uses them). */
const ACTION_CODES: Record<AuditAction, { type: Coding; standard?: Coding }> = {
  login: { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  token: { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  refresh: { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  exchange: { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  'external-login': { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  'client-credentials': { type: USER_AUTHENTICATION, standard: DCM_LOGIN },
  revoke: { type: USER_AUTHENTICATION, standard: DCM_LOGOUT },
  logout: { type: USER_AUTHENTICATION, standard: DCM_LOGOUT },
  userinfo: { type: QUERY },
  introspect: { type: QUERY },
};

const OUTCOME_CODES: Record<AuditOutcome, AuditEvent['outcome']> = {
  success: '0',
  'minor-failure': '4',
  'serious-failure': '8',
};

const MAX_REASON = 200;
const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** JWTs, and long base64/base64url/hex runs (codes, refresh tokens, secrets). */
const TOKEN_LIKE = /eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){1,4}|[A-Za-z0-9_\-+/=]{32,}/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
const CONTROL = /[\u0000-\u001f\u007f]+/g;

/**
 * Defence in depth for the one free-text field: control characters (log forging, ASVS 4.0 7.3.1)
 * become spaces, token-shaped runs are redacted, and the text is cut short.
 */
export function cleanReason(reason: string): string {
  const text = reason
    .replace(CONTROL, ' ')
    .replace(TOKEN_LIKE, (run) => (UUID_SHAPE.test(run) ? run : '[redacted]'))
    .trim();
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 1)}…` : text;
}

/**
 * Builds the FHIR R4 AuditEvent for one input. Pure apart from the id and default time. Only the
 * fields listed in {@link AuditInput} are read, so extra properties a caller smuggles in (for
 * instance by spreading a request body) never reach the store.
 */
export function toAuditEvent(input: AuditInput): NewAuditEvent {
  const codes = ACTION_CODES[input.action] ?? { type: USER_AUTHENTICATION };
  const userId = isUuid(input.userId) ? input.userId : undefined;
  const clientId = isUuid(input.clientId) ? input.clientId : undefined;
  const loginId = isUuid(input.loginId) ? input.loginId : undefined;
  const projectId = isUuid(input.projectId) ? input.projectId : undefined;
  const address = typeof input.ip === 'string' && isIP(input.ip) !== 0 ? input.ip : undefined;

  const requestor: AuditEventAgent = { requestor: true };
  if (userId) requestor.who = { reference: `User/${userId}` };
  else if (clientId) requestor.who = { reference: `ClientApplication/${clientId}` };
  // DICOM network access point type '2' = IP address.
  if (address) requestor.network = { address, type: '2' };
  const agent: AuditEventAgent[] = [requestor];
  // The application acting for the user: a second, non-requesting agent.
  if (userId && clientId)
    agent.push({ who: { reference: `ClientApplication/${clientId}` }, requestor: false });

  const subtype: Coding[] = [{ system: AUDIT_ACTION_SYSTEM, code: input.action, display: input.action }];
  if (codes.standard) subtype.push(codes.standard);

  const time = input.time instanceof Date && !Number.isNaN(input.time.getTime()) ? input.time : new Date();
  const event: NewAuditEvent = {
    resourceType: 'AuditEvent',
    // Assigned here, not at insert: a retried batch then re-inserts the same ids, so a batch that was
    // committed although its answer was lost is recognised instead of written twice.
    id: randomUUID(),
    type: codes.type,
    subtype,
    action: 'E',
    recorded: time.toISOString(),
    outcome: OUTCOME_CODES[input.outcome] ?? '4',
    agent,
    source: {
      observer: { display: 'fedhir' },
      // security-source-type 4 = Application Server.
      type: [{ system: SECURITY_SOURCE_SYSTEM, code: '4', display: 'Application Server' }],
    },
  };
  if (typeof input.reason === 'string' && input.reason.length > 0) {
    const reason = cleanReason(input.reason);
    if (reason) event.outcomeDesc = reason;
  }
  if (loginId) event.entity = [{ what: { reference: `Login/${loginId}` } }];
  if (projectId) event.meta = { project: projectId };
  return event;
}
