// @ts-check
/**
 * The signing thread (oauth/signer.ts): the ES256 signatures fedhir issues (every access token, and
 * ES256 ID tokens) are made here, off the event loop, by fast-jwt, which signs synchronously with
 * node:crypto on this thread. The P-256 signature itself is ~40–50 µs; Node 20's WebCrypto adds
 * ~50 µs of JavaScript and a thread-pool hop around it (WebIDL conversion of the algorithm, key
 * checks, the job's dispatch and promise), which jose v6 cannot avoid since it signs only through
 * WebCrypto. With jose here a client_credentials token cost ~120 µs of CPU to sign; with fast-jwt
 * ~60 (docs/performance.md). RS256 and any other header stay on the request thread with jose
 * (signer.ts): WebCrypto already runs those on the thread pool. fast-jwt only signs here; every
 * verification stays with jose (oauth/tokens.ts, federation/).
 *
 * Plain JavaScript (type-checked through JSDoc) for the same reason as storage/pglite/worker.js: a
 * TypeScript loader in this thread would cost a module-loader isolate for one small file.
 *
 * In:  `[[kid, CryptoKey][], kid[], [id, kid, header, payloadJson][]]`: keys this thread has not had
 *      yet, kids to drop (the request thread keeps a thread at MAX_THREAD_KEYS keys), then the jobs.
 * Out: `[id, token][]` or `[id, null, message][]`, at most `resultsPerMessage` per message,
 *      in any order.
 */
import { KeyObject } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { createSigner } from 'fast-jwt';

/** @typedef {import('./signer.ts').SignBatch} SignBatch */
/** @typedef {import('./signer.ts').SignResult} SignResult */
/** @typedef {(payload: Record<string, unknown>) => string} SyncSigner */

if (!parentPort) throw new Error('oauth/sign-worker.js runs as a worker thread');
const port = parentPort;

/**
 * What this thread holds for one kid: the private key, and for ES256 the synchronous signers made
 * from it (fast-jwt fixes the header and its options when a signer is created, and keeps the key as
 * a node:crypto KeyObject): by `typ`, one map for payloads with an `iat` and one for those without.
 * @typedef {{ key: CryptoKey, withIat: Map<string, SyncSigner>, withoutIat: Map<string, SyncSigner> }} HeldKey
 */
/** @type {Map<string, HeldKey>} kid → key, sent once by the request thread */
const keys = new Map();

/**
 * fast-jwt signs its own copy of the claims, and only two of its defaults touch them: without
 * `noTimestamp` it writes `iat` (a payload's own `iat` wins), with it it writes none (and drops the
 * payload's). So a payload with an `iat` gets the first kind of signer and one without gets the
 * second: either way the token carries exactly the claims it was given. No `expiresIn`/`notBefore`
 * option is set, so `exp` and `nbf` are the payload's.
 * @param {HeldKey} held @param {string} kid @param {string} typ @param {boolean} hasIat
 * @returns {SyncSigner}
 */
function es256Signer(held, kid, typ, hasIat) {
  const signers = hasIat ? held.withIat : held.withoutIat;
  let signer = signers.get(typ);
  if (!signer) {
    // fast-jwt takes key material, not a KeyObject: a PKCS#8 PEM made here, parsed by createSigner
    // into its own KeyObject and then dropped (a few per key: one per typ and iat variant).
    const pem = /** @type {string} */ (KeyObject.from(held.key).export({ format: 'pem', type: 'pkcs8' }));
    signer = createSigner({
      key: pem,
      algorithm: 'ES256',
      kid,
      header: { alg: 'ES256', typ },
      noTimestamp: !hasIat,
    });
    signers.set(typ, signer);
  }
  return signer;
}

/** @param {SignBatch[2][number]} job @returns {SignResult} */
function sign([id, kid, header, payloadJson]) {
  const held = keys.get(kid);
  if (!held) return [id, null, `no private key for kid ${kid}`];
  // The request thread sends only what fast-jwt signs as given (signer.ts signsOnThread).
  if (header.alg !== 'ES256' || held.key.algorithm.name !== 'ECDSA') return [id, null, `not an ES256 job`];
  try {
    const claims = JSON.parse(payloadJson);
    return [id, es256Signer(held, kid, header.typ ?? 'JWT', claims.iat !== undefined)(claims)];
  } catch (err) {
    return [id, null, err instanceof Error ? err.message : String(err)];
  }
}

/** Most results in one message back (signer.ts RESULTS_PER_MESSAGE, which says why). */
const resultsPerMessage = /** @type {{ resultsPerMessage: number }} */ (workerData).resultsPerMessage;

/** @type {SignResult[]} signed, not yet sent */
let ready = [];

function send() {
  if (ready.length === 0) return;
  port.postMessage(ready);
  ready = [];
}

port.on('message', (/** @type {SignBatch} */ [newKeys, forget, jobs]) => {
  for (const kid of forget) keys.delete(kid);
  for (const [kid, key] of newKeys) keys.set(kid, { key, withIat: new Map(), withoutIat: new Map() });
  for (const job of jobs) {
    ready.push(sign(job));
    if (ready.length >= resultsPerMessage) send();
  }
  send();
});
