import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HELPER = fileURLToPath(new URL('../../src/services/worker-heap.ts', import.meta.url));

// Allocates short-lived objects until V8 has grown the thread's new space as far as it may, then
// reports that space's size in MB. Bounded by a count, not a clock.
const CHURN = `
  let keep = [];
  for (let i = 0; i < 4e6; i++) { keep.push({ a: 'x' + i }); if (keep.length > 2000) keep = []; }
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  const mb = space.physical_space_size / 1048576;`;

/**
 * New-space sizes (MB) of the event loop and of a worker limited to a 6 MB young generation, in a
 * process started with `npm start`'s semi-space flag; `viaHelper` passes the limit through
 * workerResourceLimits, otherwise as is.
 */
async function newSpaces(viaHelper: boolean): Promise<{ main: number; worker: number }> {
  const child = `
    import { Worker } from 'node:worker_threads';
    import v8 from 'node:v8';
    import { workerResourceLimits } from ${JSON.stringify(HELPER)};
    const limits = { maxYoungGenerationSizeMb: 6 };
    const worker = new Worker(${JSON.stringify(`import v8 from 'node:v8'; import { parentPort } from 'node:worker_threads'; ${CHURN} parentPort.postMessage(mb);`)}, {
      eval: true, // an ES module, as the process's --input-type says
      resourceLimits: ${viaHelper} ? workerResourceLimits(limits) : limits,
    });
    const workerMb = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    ${CHURN}
    console.log(JSON.stringify({ main: mb, worker: workerMb }));`;
  const { stdout } = await run(
    process.execPath,
    ['--max-semi-space-size=8', '--import', 'tsx', '--input-type=module', '-e', child],
    { timeout: 60_000 },
  );
  return JSON.parse(stdout);
}

test('worker heap: a worker’s young-generation limit holds although the process sets a semi-space size', async () => {
  const plain = await newSpaces(false);
  const helped = await newSpaces(true);
  // Control: V8 lets the process-wide flag override the Worker's limit (why the helper exists).
  assert.ok(
    plain.worker > 8,
    `without the helper the worker's new space grows to the flag's (${plain.worker} MB)`,
  );
  // The limit applies: 6 MB of young generation is two 2 MB semi-spaces (plus V8's rounding).
  assert.ok(helped.worker <= 4, `the worker's new space stays within its limit (${helped.worker} MB)`);
  // The event loop keeps the flag's 8 MB semi-spaces: clearing the flag later does not shrink it.
  assert.ok(helped.main > 8, `the event loop's new space still grows past 8 MB (${helped.main} MB)`);
});
