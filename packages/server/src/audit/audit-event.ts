import { isIP } from 'node:net';
import type { Reference, Resource } from '../model/types.ts';
import { timeOrderedId } from '../storage/ids.ts';
import { isUuid } from '../storage/resources.ts';

/**
 * What fedhir audits (protocol.md §1: "AuditEvent for every login, exchange, refresh, logout and
 * failure"; ASVS 4.0 7.1.3 and 7.2.1: log every authentication decision, success and failure).
 */
/**
 * Every action fedhir audits. The view that renders stored events as FHIR (migration 004) maps each
 * one to its DICOM codes: a new action needs a migration that redefines `audit_event_resource`
 * (test/audit/audit-log.test.ts fails until it does).
 */
export const AUDIT_ACTIONS = [
  'login',
  'token',
  'refresh',
  'revoke',
  'logout',
  'exchange',
  'external-login',
  'client-credentials',
  'userinfo',
  'introspect',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/**
 * FHIR R4 `AuditEvent.outcome`: `success` → '0', `minor-failure` → '4' (the request failed: a wrong
 * password, a bad code), `serious-failure` → '8' (the request failed in a way that needs attention:
 * refresh-token reuse revoking a family, a code redeemed twice).
 */
export type AuditOutcome = 'success' | 'minor-failure' | 'serious-failure';

/**
 * One event as the routes describe it. Deliberately closed and typed by identifier, never by value:
 * there is no field for a token, a code, a secret, a password or an attempted user name, so none can
 * be passed by accident (protocol.md §1 "Secrets never appear in logs"; ASVS 4.0 7.1.1–7.1.2). The ids must be the
 * UUIDs of stored resources: anything else (say, a client_id that an attacker typed) is left out of
 * the event rather than stored.
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
  /** When it happened; default: when {@link toAuditRecord} runs. */
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

/**
 * A stored AuditEvent as the FHIR API answers it. The database renders it from an {@link AuditRecord}
 * (the view `audit_event_resource`, migration 004): type, subtypes, agents and entity follow from
 * the record's columns.
 */
export interface AuditEvent extends Resource {
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
}

/**
 * One audit event as it is stored: a compact row of typed columns (table `audit_event`), not a JSON
 * document. Writing ~900 bytes of JSONB per event was most of a client_credentials token's cost on
 * the embedded engine (docs/performance.md); the FHIR shape is rendered when an event is read.
 * Every field has been checked by {@link toAuditRecord}.
 */
export interface AuditRecord {
  /** Chosen here, not at insert: a retried batch re-inserts the same ids (see AuditLog). */
  readonly id: string;
  /** ISO 8601 with milliseconds, UTC. */
  readonly recorded: string;
  readonly action: AuditAction;
  /** FHIR R4 AuditEvent.outcome. */
  readonly outcome: 0 | 4 | 8;
  readonly reason: string | null;
  readonly ip: string | null;
  readonly userId: string | null;
  readonly clientId: string | null;
  readonly loginId: string | null;
  readonly projectId: string | null;
}

const OUTCOME_CODES: Record<AuditOutcome, AuditRecord['outcome']> = {
  success: 0,
  'minor-failure': 4,
  'serious-failure': 8,
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
 * Checks one input and turns it into the row that is stored. Pure apart from the id and default
 * time. Only the fields listed in {@link AuditInput} are read, so extra properties a caller smuggles
 * in (for instance by spreading a request body) never reach the store; an id that is not a UUID
 * and an address that is not an IP address are left out.
 */
export function toAuditRecord(input: AuditInput): AuditRecord {
  const time = input.time instanceof Date && !Number.isNaN(input.time.getTime()) ? input.time : new Date();
  const reason = typeof input.reason === 'string' && input.reason.length > 0 ? cleanReason(input.reason) : '';
  return {
    id: timeOrderedId(),
    recorded: time.toISOString(),
    action: input.action,
    outcome: OUTCOME_CODES[input.outcome] ?? 4,
    reason: reason || null,
    ip: typeof input.ip === 'string' && isIP(input.ip) !== 0 ? input.ip : null,
    userId: isUuid(input.userId) ? input.userId : null,
    clientId: isUuid(input.clientId) ? input.clientId : null,
    loginId: isUuid(input.loginId) ? input.loginId : null,
    projectId: isUuid(input.projectId) ? input.projectId : null,
  };
}
