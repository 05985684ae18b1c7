import { v7 } from 'uuid';
import { pooledRandomBytes } from '../crypto/random-pool.ts';

/**
 * The counter of RFC 9562 §6.2 Method 1 ("fixed bit-length dedicated counter"): seeded with 31
 * random bits in each new millisecond and counted up within one, so ids made in the same
 * millisecond stay in order; should it run over, the id's clock moves a millisecond ahead, as when the
 * system clock steps back. `uuid`'s v7() keeps this state only when it draws its own random bytes
 * (one CSPRNG call per id); given ours from the pool, it is given the state too.
 */
const clock = { msecs: Number.NEGATIVE_INFINITY, seq: 0 };

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
  const random = pooledRandomBytes(16);
  const now = Date.now();
  if (now > clock.msecs) {
    clock.msecs = now;
    clock.seq = random.readUInt32BE(6) & 0x7fffffff;
  } else {
    clock.seq = (clock.seq + 1) | 0;
    if (clock.seq === 0) clock.msecs++;
  }
  return v7({ random, msecs: clock.msecs, seq: clock.seq });
}
