import { v7 } from 'uuid';

/**
 * A UUID version 7 (RFC 9562 §5.7): 48 bits of Unix milliseconds first, then 74 random bits, so ids
 * made one after another sort one after another. For the rows written at the rate tokens are issued
 * (AuditEvents, Logins): a random (version 4) primary key puts each insert on a random leaf of the
 * index, and once the index outgrows the buffer cache every insert reads and dirties an old page;
 * time-ordered keys append to the rightmost leaf (docs/performance.md: with 1.5 million AuditEvents
 * in the embedded database, the database thread's cost per row grew ~55 % with random ids and ~25 %
 * with these). The time in the id is already in the row (`recorded`, `created_at`) and in the token
 * that names a login (`iat`), so it tells nobody anything new; ids stay unguessable in their random
 * bits and are never used as secrets.
 */
export function timeOrderedId(): string {
  return v7();
}
