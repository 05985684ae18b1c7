/**
 * Child process of test/storage/pglite-malloc.test.ts: `node --import tsx malloc-heaps-child.ts <dataDir>`.
 * Opens the embedded database in `dataDir`, runs enough statements for V8 to tier up the engine's hot
 * WASM functions, and prints `{"mb": n}`: how many MB glibc's malloc heaps hold resident then.
 */
import { readFileSync } from 'node:fs';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';

/** glibc's HEAP_MAX_SIZE on 64-bit: each thread arena is one reservation of this size, so aligned. */
const ARENA = 64n * 1024n * 1024n;

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  kb: number;
}

/**
 * Resident MB of the main arena (`[heap]`) and the threads' arenas, from /proc/self/smaps. A thread
 * arena is an anonymous 64 MB-aligned reservation of exactly 64 MB, readable and writable as far as
 * it has grown and inaccessible beyond: that is how it is told apart from V8's and PGlite's mappings.
 */
function mallocHeapsMb(): number {
  const maps: Mapping[] = [];
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const [, start = '0', end = '0', perms = '', path = ''] = head;
      maps.push({ start: BigInt(`0x${start}`), end: BigInt(`0x${end}`), perms, path, kb: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    const last = maps.at(-1);
    if (rss && last) last.kb = Number(rss[1]);
  }
  let kb = 0;
  maps.forEach((map, i) => {
    if (map.path === '[heap]') kb += map.kb;
    if (map.path !== '' || map.perms !== 'rw-p' || map.start % ARENA !== 0n) return;
    const rest = maps[i + 1];
    const tail =
      rest && rest.path === '' && rest.perms === '---p' && rest.start === map.end
        ? rest.end - rest.start
        : 0n;
    if (map.end - map.start + tail === ARENA) kb += map.kb;
  });
  return kb / 1024;
}

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: malloc-heaps-child.ts <dataDir>');
const db = await createPgliteDb(dataDir);
// A count of statements bounds the child, not a clock.
for (let i = 0; i < 4000; i++) await db.query('SELECT $1::int + 1 AS n, now() AS at', [i]);
// Lets the last background compile jobs finish (they run while the statements do).
await new Promise((resolve) => setTimeout(resolve, 1000));
const mb = mallocHeapsMb();
await db.close();
process.stdout.write(`${JSON.stringify({ mb })}\n`);
