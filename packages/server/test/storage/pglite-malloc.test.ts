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
 * Real processes, real PGlite: each child (test/support/malloc-heaps-child.ts) starts with the
 * environment of `npm start`, or that environment without the threshold (the control), reopens the
 * same data directory, runs a few thousand statements, and reports what glibc's heaps hold.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCommand } from '../../scripts/start-command.mjs';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('../support/malloc-heaps-child.ts', import.meta.url));

/** The variable is glibc's (musl and other libcs ignore it), and the child reads Linux's /proc. */
const glibc = Boolean(
  (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime,
);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function mallocHeapsAfterLoad(dataDir: string, env: Record<string, string>): Promise<number> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, dataDir], {
    env,
    timeout: 120_000,
  });
  return (JSON.parse(stdout) as { mb: number }).mb;
}

let dataDir: string;
before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'fedhir-malloc-'));
  // Initialised once here, so each child reopens it as a restarted server does.
  const db = await createPgliteDb(dataDir);
  await db.close();
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('malloc: npm start’s mmap threshold keeps the WASM compiler’s freed memory out of resident memory', {
  skip: !glibc && 'MALLOC_MMAP_THRESHOLD_ is a glibc setting (and the child reads /proc)',
}, async () => {
  const { env: startEnv } = startCommand();
  assert.equal(startEnv.MALLOC_MMAP_THRESHOLD_, '32768', 'npm start sets the threshold');
  const withThreshold = { ...(process.env as Record<string, string>), ...startEnv };
  const control = { ...withThreshold };
  delete control.MALLOC_MMAP_THRESHOLD_;

  // Three children of each, alternated: TurboFan's work varies from run to run (one pair measured
  // 19.4 → 10.6 MB where 29–37 → 7–8 MB is usual), so the medians are compared, not single runs.
  const withoutRuns: number[] = [];
  const fixedRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    withoutRuns.push(await mallocHeapsAfterLoad(dataDir, control));
    fixedRuns.push(await mallocHeapsAfterLoad(dataDir, withThreshold));
  }
  const without = median(withoutRuns);
  const fixed = median(fixedRuns);
  const runs = `without ${withoutRuns.map((mb) => mb.toFixed(1)).join(', ')}; with ${fixedRuns.map((mb) => mb.toFixed(1)).join(', ')} MB`;
  // Observed on 2-core Linux machines: ~19–37 MB without the threshold, ~7–11 MB with it.
  assert.ok(without - fixed >= 8, `the threshold saves at least 8 MB of malloc heaps (medians; ${runs})`);
});
