/**
 * Heap limits for the server's worker threads (the embedded database's and the signing thread's).
 *
 * `npm start` gives the event loop's isolate an 8 MB semi-space (`--max-semi-space-size=8`, see
 * docs/performance.md). V8 reads that flag again for every isolate created later, and there it
 * overrides a Worker's `resourceLimits.maxYoungGenerationSizeMb`: each thread's young generation
 * would grow to the event loop's 16 MB whatever limit it was given. The event loop's heap is sized
 * when its isolate is created, so clearing the flag once the process runs keeps its 8 MB and lets
 * each worker's own limit apply (measured: a worker limited to 6 MB then holds a 4 MB new space
 * instead of 16 MB, the event loop's stays 16 MB).
 */
import { setFlagsFromString } from 'node:v8';
import type { ResourceLimits } from 'node:worker_threads';

let flagCleared = false;

/** `limits`, made effective for a Worker created next (see the file comment). */
export function workerResourceLimits(limits: ResourceLimits): ResourceLimits {
  if (!flagCleared) {
    setFlagsFromString('--max-semi-space-size=0');
    flagCleared = true;
  }
  return limits;
}
