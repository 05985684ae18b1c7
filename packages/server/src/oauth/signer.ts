import { Worker } from 'node:worker_threads';
import { CompactSign, type JWTHeaderParameters } from 'jose';
import { workerResourceLimits } from '../services/worker-heap.ts';

/** One message to the signing thread: keys it has not seen yet, kids it may drop, then the jobs. */
export type SignBatch = [
  keys: [kid: string, key: CryptoKey][],
  forget: string[],
  jobs: [id: number, kid: string, header: JWTHeaderParameters, payloadJson: string][],
];
/** One signature's outcome: the token, or null and why not. */
export type SignResult = [id: number, token: string] | [id: number, token: null, message: string];

/** The signing thread stopped or could not sign: a server fault the next request may not meet (503). */
export class SigningUnavailable extends Error {
  override readonly name = 'SigningUnavailable';
}

/**
 * Private keys a signing thread holds at most. Only a current key signs (oauth/keys.ts: one active
 * key per algorithm; a retired key only verifies), so a few cover a rotation in progress; without a
 * bound every rotation would leave its key in the thread for the process's lifetime.
 */
export const MAX_THREAD_KEYS = 8;

/**
 * Most results in one message back. A batch from the request thread holds every signature asked for
 * in one turn of its event loop (~20 under load, ~45 µs each): answering the whole batch at once made
 * its first token wait ~1 ms for its last, with the request thread and the client idle meanwhile.
 * Answering every few lets the request thread send those responses while the rest are signed, and
 * still shares each message (and each wake-up of the request thread) between several tokens.
 * Interleaved runs of 2 rounds each (docs/performance.md): client_credentials 1.84–2.73× the peer
 * per round with 4 (median 2.2), 1.33–2.09× with the whole batch (1.9), 1.62–2.16× with 1 (2.0).
 */
export const RESULTS_PER_MESSAGE = 4;

interface Pending {
  resolve: (token: string) => void;
  reject: (err: Error) => void;
}

/** The signing thread signs ES256 whose header is exactly what fast-jwt writes: alg, typ, kid. */
function signsOnThread(header: JWTHeaderParameters, key: CryptoKey): boolean {
  if (header.alg !== 'ES256' || key.algorithm.name !== 'ECDSA') return false;
  for (const name in header) if (name !== 'alg' && name !== 'typ' && name !== 'kid') return false;
  return true;
}

const utf8 = new TextEncoder();

/**
 * RS256 (ID tokens by default) and any other header: jose, on this thread. WebCrypto runs the RSA
 * signature (~0.5 ms) on libuv's thread pool, several at once on every core, so a hop to the
 * signing thread would only add a message each way (and keep jose's promises in a second heap).
 */
async function signWithWebCrypto(
  header: JWTHeaderParameters,
  payloadJson: string,
  key: CryptoKey,
): Promise<string> {
  try {
    return await new CompactSign(utf8.encode(payloadJson)).setProtectedHeader(header).sign(key);
  } catch (err) {
    throw new SigningUnavailable(`signing failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Signs JWS compact serialisations (RFC 7515 §7.1): ES256 on a thread of its own (`sign-worker.js`,
 * fast-jwt), RS256 and other headers here with jose (WebCrypto: the thread pool). For the thread,
 * the request thread hands over the header and the claims' JSON and gets the token back.
 * Signatures requested in the same turn of the event loop travel as one message, so under load a
 * batch costs the request thread about what a single one does; the tokens come back a few at a
 * time as they are signed ({@link RESULTS_PER_MESSAGE}).
 *
 * The thread starts at the first signature and is started again after a crash (the signatures in
 * flight then fail with {@link SigningUnavailable}, answered 503; the next ones succeed). It holds
 * the event loop open only while signatures are pending, so an idle server can still exit.
 */
export class JwsSigner {
  /** The signing thread's script; a test swaps it for one that dies on its first job. */
  private workerUrl = new URL('./sign-worker.js', import.meta.url);
  private worker: Worker | undefined;
  /** Private keys of the queued jobs by kid; each thread is sent a key once, with its first job. */
  private queuedKeys = new Map<string, CryptoKey>();
  /** kids whose private key the current thread has, oldest first (at most {@link MAX_THREAD_KEYS}). */
  private sentKeys = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private resultMessages = 0;
  private queued: SignBatch[2] = [];
  private flushScheduled = false;
  private closed = false;
  private drained: (() => void) | undefined;

  sign(header: JWTHeaderParameters & { kid: string }, payloadJson: string, key: CryptoKey): Promise<string> {
    if (this.closed) return Promise.reject(new SigningUnavailable('the signer is closed'));
    if (!signsOnThread(header, key)) return signWithWebCrypto(header, payloadJson, key);
    const id = this.nextId++;
    this.queuedKeys.set(header.kid, key);
    this.queued.push([id, header.kid, header, payloadJson]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After the current I/O callbacks: requests parsed in the same turn share the message.
      setImmediate(() => this.flush());
    }
    return new Promise<string>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queued;
    const keys = this.queuedKeys;
    this.queued = [];
    this.queuedKeys = new Map();
    if (jobs.length === 0) return;
    const worker = this.thread();
    const newKeys: SignBatch[0] = [];
    for (const [kid, key] of keys) {
      if (this.sentKeys.has(kid)) continue;
      this.sentKeys.add(kid);
      newKeys.push([kid, key]);
    }
    worker.ref();
    worker.postMessage([newKeys, this.keysToForget(keys), jobs] satisfies SignBatch);
  }

  /** The oldest keys past the bound that this batch does not use; a later job for one sends it again. */
  private keysToForget(inUse: Map<string, CryptoKey>): string[] {
    const forget: string[] = [];
    for (const kid of this.sentKeys) {
      if (this.sentKeys.size <= MAX_THREAD_KEYS) break;
      if (inUse.has(kid)) continue;
      this.sentKeys.delete(kid);
      forget.push(kid);
    }
    return forget;
  }

  /** Messages of results received from signing threads so far (for tests and diagnostics). */
  get resultMessageCount(): number {
    return this.resultMessages;
  }

  /** How many private keys the current signing thread holds (for tests and diagnostics). */
  get threadKeyCount(): number {
    return this.sentKeys.size;
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.workerUrl, {
      workerData: { resultsPerMessage: RESULTS_PER_MESSAGE },
      // A few hundred bytes of state; bounded so a fault cannot grow it unnoticed.
      resourceLimits: workerResourceLimits({ maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 }),
    });
    worker.on('message', (results: SignResult[]) => this.settle(results));
    worker.on('error', (err) =>
      this.fail(worker, new SigningUnavailable(`the signing thread failed: ${err.message}`)),
    );
    worker.on('exit', (code) =>
      this.fail(worker, new SigningUnavailable(`the signing thread exited (code ${code})`)),
    );
    this.worker = worker;
    this.sentKeys = new Set();
    return worker;
  }

  private settle(results: SignResult[]): void {
    this.resultMessages++;
    for (const [id, token, message] of results) {
      const pending = this.pending.get(id);
      if (!pending) continue;
      this.pending.delete(id);
      if (token === null) pending.reject(new SigningUnavailable(`signing failed: ${message}`));
      else pending.resolve(token);
    }
    if (this.pending.size === 0) {
      this.worker?.unref();
      this.drained?.();
    }
  }

  /** A crashed or stopped thread: every pending signature fails now; the next one starts a new thread. */
  private fail(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.queued = [];
    this.queuedKeys = new Map();
    const failed = [...this.pending.values()];
    this.pending.clear();
    for (const pending of failed) pending.reject(err);
    this.drained?.();
  }

  /** Lets the signatures in flight finish (at most `timeoutMs`), then stops the thread. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closed = true;
    if (this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    // Forgotten before it is stopped: terminate() refs the thread until it exits, and an answer
    // still on its way (Node delivers queued messages before 'exit') must find no thread to unref,
    // or with nothing else alive the event loop would end with close() pending.
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
    const left = [...this.pending.values()];
    this.pending.clear();
    for (const pending of left) pending.reject(new SigningUnavailable('the signer is closed'));
  }
}
