// Preloaded (`node --import`) into a child server by BENCH_HEAP_PROF (lib/spawn.ts): V8's sampling
// heap profiler over the whole life of the process's main thread, counting the objects the GC has
// already collected too, so the profile shows what each code path allocates, not only what is still
// alive at the end (`node --heap-prof` keeps only the latter). Written as
// `<dir>/Heap.<pid>.heapprofile` when the process exits; Chrome DevTools' Memory tab opens it, and
// `node --import tsx bench/heap-top.ts <file>` lists the largest allocators.
// Plain JavaScript: it runs before any loader.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const dir = process.env.BENCH_HEAP_PROF_DIR;
if (dir && isMainThread) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  // An in-process session answers synchronously, so this completes inside the 'exit' handler.
  process.once('exit', () => {
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (err || !result) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `Heap.${process.pid}.heapprofile`), JSON.stringify(result.profile));
    });
  });
}
