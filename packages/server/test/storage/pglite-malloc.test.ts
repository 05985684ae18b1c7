/**
 * `npm start`'s malloc settings keep the embedded engine's compiler from pinning memory.
 *
 * V8 re-compiles PGlite's hot WASM functions with TurboFan on its platform's worker threads. Each
 * compile job takes its working memory in 32 KB segments from glibc's malloc, in that thread's own
 * arena, and frees them when it is done; a few small allocations that live on sit between the freed
 * segments, so glibc can return none of them: ~25 MB of resident memory a reopened embedded server
 * keeps for its lifetime. With `MALLOC_MMAP_THRESHOLD_=32768` every such segment is a mapping of
 * its own, returned to the kernel when freed (docs/performance.md, 2026-12-05).
 *
 * Real processes, real PGlite: each child starts with the environment of `npm start` (or that
 * environment without the threshold, the control), opens the same data directory, runs a few
 * thousand statements so that V8 tiers up the engine's hot functions, and reports how much of its
 * memory glibc's heaps hold. A count of statements bounds each child, not a clock.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCommand } from '../../scripts/start-command.mjs';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';

const run = promisify(execFile);
const PGLITE = fileURLToPath(new URL('../../src/storage/pglite/index.ts', import.meta.url));

/**
 * Resident MB of glibc's heaps in this process, from /proc/self/smaps: the main arena (`[heap]`)
 * and the threads' arenas. glibc maps each thread arena as one 64 MB-aligned reservation of 64 MB
 * (HEAP_MAX_SIZE on 64-bit), readable and writable as far as it has grown and inaccessible beyond,
 * which is how they are told apart from V8's and PGlite's anonymous mappings.
 */
const MEASURE = `
  const ARENA = 64n * 1024n * 1024n;
  function mallocHeapsMb() {
    const maps = [];
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
      const head = /^([0-9a-f]+)-([0-9a-f]+) (\\S+) \\S+ \\S+ \\S+\\s*(.*)$/.exec(line);
      if (head) {
        maps.push({ start: BigInt('0x' + head[1]), end: BigInt('0x' + head[2]), perms: head[3], path: head[4], kb: 0 });
        continue;
      }
      const rss = /^Rss:\\s+(\\d+) kB/.exec(line);
      if (rss && maps.length > 0) maps[maps.length - 1].kb = Number(rss[1]);
    }
    let kb = 0;
    maps.forEach((map, i) => {
      if (map.path === '[heap]') kb += map.kb;
      if (map.path !== '' || map.perms !== 'rw-p' || map.start % ARENA !== 0n) return;
      const rest = maps[i + 1];
      const tail = rest && rest.path === '' && rest.perms === '---p' && rest.start === map.end ? rest.end - rest.start : 0n;
      if (map.end - map.start + tail === ARENA) kb += map.kb;
    });
    return kb / 1024;
  }`;

/** Opens `dataDir` in a child started with `env`, runs statements, returns its malloc heaps' MB. */
async function mallocHeapsAfterLoad(dataDir: string, env: Record<string, string>): Promise<number> {
  const child = `
    import { readFileSync } from 'node:fs';
    import { createPgliteDb } from ${JSON.stringify(PGLITE)};
    ${MEASURE}
    const db = await createPgliteDb(${JSON.stringify(dataDir)});
    for (let i = 0; i < 4000; i++) await db.query('SELECT $1::int + 1 AS n, now() AS at', [i]);
    // Lets the last background compile jobs finish (they run while the statements do).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const mb = mallocHeapsMb();
    await db.close();
    console.log(JSON.stringify({ mb }));`;
  const script = `${dataDir}-child.mjs`;
  writeFileSync(script, child);
  const { stdout } = await run(process.execPath, ['--import', 'tsx', script], { env, timeout: 120_000 });
  return (JSON.parse(stdout) as { mb: number }).mb;
}

let dataDir: string;
before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'fedhir-malloc-'));
  // Initialised once here, so each child reopens it as a restarted server does.
  const db = await createPgliteDb(dataDir);
  await db.close();
});
after(() => {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(`${dataDir}-child.mjs`, { force: true });
});

test('malloc: npm start’s mmap threshold keeps the WASM compiler’s freed memory out of resident memory', {
  skip: process.platform !== 'linux' && 'glibc malloc and /proc are Linux-only',
}, async () => {
  const { env: startEnv } = startCommand();
  assert.equal(startEnv.MALLOC_MMAP_THRESHOLD_, '32768', 'npm start sets the threshold');
  const withThreshold = { ...(process.env as Record<string, string>), ...startEnv };
  const control = { ...withThreshold };
  delete control.MALLOC_MMAP_THRESHOLD_;

  const without = await mallocHeapsAfterLoad(dataDir, control);
  const fixed = await mallocHeapsAfterLoad(dataDir, withThreshold);
  // Observed on 2-core Linux machines: ~29–37 MB without the threshold, ~7–8 MB with it.
  assert.ok(
    without - fixed >= 10,
    `the threshold saves at least 10 MB of malloc heaps (${without.toFixed(1)} → ${fixed.toFixed(1)} MB)`,
  );
});
