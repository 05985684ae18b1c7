/**
 * Start a server as a child process (`node --import tsx <file>`, or `node <file>` for JavaScript) and
 * stop it cleanly.
 *
 * Readiness, by default: the child binds 127.0.0.1 port 0 and prints one JSON line `{"port":N}` on
 * stdout. For a server with a fixed port (e.g. the fedhir server with PORT=…), pass `readyUrl`: it is
 * polled until it answers 2xx. Either way the wait is bounded (`readyTimeoutMs`).
 *
 * Every child is registered; `installExitHandlers()` kills them all on exit, SIGINT, SIGTERM and
 * uncaught errors. Children get a stdin pipe, so the reference servers (bench/refs/common.ts) also exit
 * by themselves when this process dies without a chance to clean up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface SpawnOptions {
  /** A short name for logs and errors; default: the file's base name. */
  name?: string;
  args?: string[];
  /** Node flags, before the file (the fedhir server's come from its `npm start` command). */
  nodeArgs?: string[];
  /** Added to (and overriding) this process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Default: the repository root (so `--import tsx` resolves from the root node_modules). */
  cwd?: string;
  /** Poll this URL until 2xx instead of waiting for the `{"port":N}` line. */
  readyUrl?: string;
  /** Upper bound for start-up. Default 30 s. */
  readyTimeoutMs?: number;
}

export interface Child {
  name: string;
  pid: number;
  port: number;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The last few KB of the child's stdout and stderr, for error messages. */
  logTail(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after a bounded wait. Idempotent. */
  stop(): Promise<void>;
}

const LOG_TAIL_BYTES = 16 * 1024;
const live = new Set<ChildProcess>();

export async function spawnServer(file: string, opts: SpawnOptions = {}): Promise<Child> {
  const name = opts.name ?? path.basename(file).replace(/\.ts$/, '');
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  // BENCH_CPU_PROF=<dir>[:<name>]: write a V8 CPU profile of the children (all, or the one named) to
  // <dir> when they exit — how the "where the time goes" figures in docs/performance.md are taken.
  const [profDir, profName] = (process.env.BENCH_CPU_PROF ?? '').split(':');
  const profile =
    profDir && (!profName || profName === name) ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  // BENCH_HEAP_PROF=<dir>[:<name>]: the same for allocations (lib/heap-profile.mjs), collected objects
  // included — how the bytes allocated per token in docs/performance.md are measured.
  const [heapDir, heapName] = (process.env.BENCH_HEAP_PROF ?? '').split(':');
  if (heapDir && (!heapName || heapName === name)) {
    profile.push('--import', path.join(import.meta.dirname, 'heap-profile.mjs'));
    env.BENCH_HEAP_PROF_DIR = path.resolve(heapDir);
  }
  // BENCH_PERF_MAP=<name>: the child writes /tmp/perf-<pid>.map, so `perf record -g -p <pid>` names
  // its JavaScript frames. perf samples on-CPU time only; a V8 CPU profile samples wall time, so on
  // a saturated machine it charges a preempted thread's wait to whatever call it was in.
  if (process.env.BENCH_PERF_MAP === name) profile.push('--perf-basic-prof-only-functions');
  // TypeScript through the loader; built JavaScript (the fedhir server's dist/) as it is.
  const loader = file.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const proc = spawn(
    process.execPath,
    [...profile, ...(opts.nodeArgs ?? []), ...loader, file, ...(opts.args ?? [])],
    {
      cwd: opts.cwd ?? REPO_ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  if (proc.pid === undefined) throw new Error(`${name}: could not spawn ${file}`);
  live.add(proc);

  let tail = '';
  let exitInfo: string | undefined;
  const append = (chunk: Buffer) => {
    tail += chunk.toString('utf8');
    if (tail.length > LOG_TAIL_BYTES) tail = tail.slice(-LOG_TAIL_BYTES);
  };
  // Always drain both pipes, or a chatty child blocks on a full pipe.
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  proc.stdin?.on('error', () => {});
  const exitedPromise = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      live.delete(proc);
      resolve();
    });
  });

  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  const fail = (why: string) =>
    new Error(`${name} did not start: ${why}\n--- ${name} output (tail) ---\n${tail.trim()}\n---`);

  const stop = async () => {
    if (exitInfo !== undefined) return;
    proc.kill('SIGTERM');
    const term = await Promise.race([exitedPromise.then(() => true), sleep(5000).then(() => false)]);
    if (!term && exitInfo === undefined) {
      proc.kill('SIGKILL');
      await Promise.race([exitedPromise, sleep(2000)]);
    }
  };

  try {
    const port = await Promise.race([
      opts.readyUrl ? pollReady(opts.readyUrl, () => exitInfo) : portLine(proc),
      exitedPromise.then(() => Promise.reject(fail(`exited early (${exitInfo})`))),
      sleep(timeoutMs).then(() => Promise.reject(fail(`not ready within ${timeoutMs} ms`))),
    ]);
    return {
      name,
      pid: proc.pid,
      port,
      origin: `http://127.0.0.1:${port}`,
      logTail: () => tail,
      exited: () => exitInfo !== undefined,
      stop,
    };
  } catch (err) {
    await stop();
    throw err instanceof Error && err.message.includes('did not start') ? err : fail(String(err));
  }
}

/** Resolves with N from the first stdout line that is exactly `{"port":N}` (other lines are ignored). */
function portLine(proc: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.startsWith('{"port"')) {
          try {
            const port = (JSON.parse(line) as { port?: unknown }).port;
            if (typeof port === 'number' && port > 0) {
              proc.stdout?.off('data', onData);
              resolve(port);
              return;
            }
          } catch {
            // not our line
          }
        }
        nl = buf.indexOf('\n');
      }
      if (buf.length > 64 * 1024) buf = '';
    };
    proc.stdout?.on('data', onData);
  });
}

/** Polls `url` every 100 ms until it answers 2xx; the caller bounds the total time. */
async function pollReady(url: string, exited: () => string | undefined): Promise<number> {
  const port = Number(new URL(url).port || 80);
  while (exited() === undefined) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return port;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error('exited while polling');
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago — for servers that cannot listen on port 0 and
 * announce it (pass it in their env, and `readyUrl` to `spawnServer`).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Sends SIGKILL to every child still alive (synchronous: usable in an 'exit' handler). */
export function killAllSync(): void {
  for (const proc of live) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

let installed = false;

/**
 * Kills every child on normal exit, Ctrl-C, SIGTERM and uncaught errors. `onSignal` may run a bounded
 * async cleanup first (e.g. stop autocannon); it is given 5 s at most.
 */
export function installExitHandlers(onSignal?: () => Promise<void>): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children…\n`);
      const cleanup = onSignal ? Promise.race([onSignal().catch(() => {}), sleep(5000)]) : Promise.resolve();
      void cleanup.finally(() => {
        killAllSync();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: uncaught exception: ${err.stack ?? err}\n`);
    killAllSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: unhandled rejection: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAllSync();
    process.exit(1);
  });
}
