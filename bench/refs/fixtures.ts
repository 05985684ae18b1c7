/**
 * Constants shared by the reference servers and the cases that load them. No side effects: case files
 * may import this module (never a server file, which would start the server in the load generator).
 */

/** The peer's one client (client_secret_basic or client_secret_post). */
export const PEER_CLIENT_ID = 'bench-client';
export const PEER_CLIENT_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
/** The peer's resource server (the access tokens' audience). */
export const PEER_RESOURCE = 'urn:fedhir:bench-api';

/** Number of Patient rows the read ceiling seeds. */
export const SEEDED_ROWS = 1000;

/** Deterministic id of seeded row `i` (so the load generator knows them without asking). */
export function seededId(i: number): string {
  return `00000000-0000-4000-8000-${String(i % SEEDED_ROWS).padStart(12, '0')}`;
}
