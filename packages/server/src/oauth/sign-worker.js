// @ts-check
/**
 * The signing thread (oauth/signer.ts): jose signs every JWT fedhir issues here, off the event
 * loop. Node 20's WebCrypto spends ~25–40 µs of JavaScript per signature before and after the
 * thread-pool job (WebIDL conversion of the algorithm, key checks, the job's dispatch and promise),
 * plus jose's own header and base64url work; on the request thread that was a fifth of a
 * client_credentials token's CPU (docs/performance.md). The request thread now pays one message
 * per batch of signatures.
 *
 * Plain JavaScript (type-checked through JSDoc) for the same reason as storage/pglite/worker.js: a
 * TypeScript loader in this thread would cost a module-loader isolate for one small file.
 *
 * In:  `[[kid, CryptoKey][], kid[], [id, kid, header, payloadJson][]]`: keys this thread has not had
 *      yet, kids to drop (the request thread keeps a thread at MAX_THREAD_KEYS keys), then the jobs.
 * Out: `[id, token][]` or `[id, null, message][]`, one message per batch, in any order.
 */
import { parentPort } from 'node:worker_threads';
import { CompactSign } from 'jose';

/** @typedef {import('./signer.ts').SignBatch} SignBatch */
/** @typedef {import('./signer.ts').SignResult} SignResult */

if (!parentPort) throw new Error('oauth/sign-worker.js runs as a worker thread');
const port = parentPort;
const utf8 = new TextEncoder();
/** @type {Map<string, CryptoKey>} kid → private key, sent once by the request thread */
const keys = new Map();

/** @param {SignBatch[2][number]} job @returns {Promise<SignResult>} */
async function sign([id, kid, header, payloadJson]) {
  const key = keys.get(kid);
  if (!key) return [id, null, `no private key for kid ${kid}`];
  try {
    const token = await new CompactSign(utf8.encode(payloadJson)).setProtectedHeader(header).sign(key);
    return [id, token];
  } catch (err) {
    return [id, null, err instanceof Error ? err.message : String(err)];
  }
}

port.on('message', async (/** @type {SignBatch} */ [newKeys, forget, jobs]) => {
  for (const kid of forget) keys.delete(kid);
  for (const [kid, key] of newKeys) keys.set(kid, key);
  port.postMessage(await Promise.all(jobs.map(sign)));
});
