/**
 * The signing thread (src/oauth/signer.ts): every token it signs verifies with jose, a batch of
 * concurrent signatures each gets its own token, a key it has not seen travels with its first job,
 * a crash fails only the signatures in flight, and the token endpoint answers that as 503.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compactVerify, generateKeyPair } from 'jose';
import {
  JwsSigner,
  MAX_THREAD_KEYS,
  RESULTS_PER_MESSAGE,
  SigningUnavailable,
} from '../../src/oauth/signer.ts';
import { basic, createProjectFixture } from '../support/fixtures.ts';
import { NO_FAILURE_LIMITS, token } from '../support/oauth-flows.ts';
import { startServer } from '../support/server.ts';

const es256 = () => generateKeyPair('ES256');
/** A signing thread that exits, unanswered, when it is handed its first job. */
const DYING_THREAD = new URL('../support/dying-sign-worker.js', import.meta.url);
const header = (kid: string) => ({ alg: 'ES256', typ: 'at+jwt', kid });

test('concurrent signatures share a message and each verifies with its own payload', async () => {
  const signer = new JwsSigner();
  try {
    const { privateKey, publicKey } = await es256();
    const payloads = Array.from({ length: 200 }, (_, i) => JSON.stringify({ sub: `user-${i}` }));
    const tokens = await Promise.all(payloads.map((p) => signer.sign(header('k1'), p, privateKey)));
    assert.equal(new Set(tokens).size, 200);
    for (const [i, token] of tokens.entries()) {
      const { payload, protectedHeader } = await compactVerify(token, publicKey);
      assert.equal(new TextDecoder().decode(payload), payloads[i]);
      assert.deepEqual(protectedHeader, header('k1'));
    }
  } finally {
    await signer.close();
  }
});

test('a batch is answered a few tokens at a time, so its first token does not wait for its last', async () => {
  const signer = new JwsSigner();
  try {
    const { privateKey, publicKey } = await es256();
    await signer.sign(header('k1'), '{"warm":true}', privateKey);
    const before = signer.resultMessageCount;
    // Asked for in one turn: one message to the thread, ceil(24 / RESULTS_PER_MESSAGE) back.
    const tokens = await Promise.all(
      Array.from({ length: 24 }, (_, i) => signer.sign(header('k1'), `{"n":${i}}`, privateKey)),
    );
    const messages = signer.resultMessageCount - before;
    assert.ok(messages > 1, `24 tokens came back in ${messages} message: the first waited for the last`);
    assert.equal(messages, Math.ceil(24 / RESULTS_PER_MESSAGE));
    for (const [i, token] of tokens.entries()) {
      assert.equal(new TextDecoder().decode((await compactVerify(token, publicKey)).payload), `{"n":${i}}`);
    }
  } finally {
    await signer.close();
  }
});

test('ES256 tokens carry exactly the claims and header given (iat, nbf, exp kept; none added)', async () => {
  const signer = new JwsSigner();
  try {
    const { privateKey, publicKey } = await es256();
    const now = Math.floor(Date.now() / 1000);
    const claims = [
      {
        iss: 'https://fedhir.test/',
        sub: 'ClientApplication/1',
        iat: now - 100,
        nbf: now - 100,
        exp: now + 60,
        jti: 'a',
      },
      {
        sub: 'no-iat',
        exp: now + 60,
        scope: 'openid',
        nested: { list: [1, 'two', null] },
        text: 'é "q" \u2028',
      },
      { sub: 'only-sub' },
    ].map((c) => JSON.stringify(c));
    const tokens = await Promise.all(claims.map((c) => signer.sign(header('k1'), c, privateKey)));
    for (const [i, token] of tokens.entries()) {
      const { payload, protectedHeader } = await compactVerify(token, publicKey);
      assert.equal(new TextDecoder().decode(payload), claims[i], 'the signed JSON is the JSON given');
      assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'kid', 'typ']);
      assert.deepEqual(protectedHeader, header('k1'));
    }
  } finally {
    await signer.close();
  }
});

test('RS256 and headers with more parameters sign too (jose, not the thread), with the header given', async () => {
  const signer = new JwsSigner();
  try {
    const rsa = await generateKeyPair('RS256');
    const idHeader = { alg: 'RS256', typ: 'JWT', kid: 'r1' };
    const idToken = await signer.sign(idHeader, '{"sub":"u","iat":1}', rsa.privateKey);
    const verified = await compactVerify(idToken, rsa.publicKey);
    assert.deepEqual(verified.protectedHeader, idHeader);
    assert.equal(new TextDecoder().decode(verified.payload), '{"sub":"u","iat":1}');
    const ec = await es256();
    const withCty = { alg: 'ES256', typ: 'at+jwt', kid: 'k2', cty: 'json' };
    const token = await signer.sign(withCty, '{"sub":"v"}', ec.privateKey);
    assert.deepEqual((await compactVerify(token, ec.publicKey)).protectedHeader, withCty);
    // WebCrypto already signs on the thread pool: neither went through the signing thread.
    assert.equal(signer.resultMessageCount, 0);
    assert.equal(signer.threadKeyCount, 0);
  } finally {
    await signer.close();
  }
});

test('a key that cannot make the signature asked for fails as SigningUnavailable (503), not a raw error', async () => {
  const signer = new JwsSigner();
  try {
    // An RSA key under an ES256 header: not the thread's job, so jose refuses it on this thread.
    const rsa = await generateKeyPair('RS256');
    await assert.rejects(signer.sign(header('k9'), '{"sub":"w"}', rsa.privateKey), SigningUnavailable);
    // An EC key under RS256.
    const ec = await es256();
    await assert.rejects(
      signer.sign({ alg: 'RS256', typ: 'JWT', kid: 'k9' }, '{"sub":"w"}', ec.privateKey),
      SigningUnavailable,
    );
    assert.equal(signer.resultMessageCount, 0);
  } finally {
    await signer.close();
  }
});

test('a new kid (a rotation) signs with its own key from its first token', async () => {
  const signer = new JwsSigner();
  try {
    const first = await es256();
    const second = await es256();
    const a = await signer.sign(header('old'), '{"n":1}', first.privateKey);
    const [b, c] = await Promise.all([
      signer.sign(header('new'), '{"n":2}', second.privateKey),
      signer.sign(header('old'), '{"n":3}', first.privateKey),
    ]);
    await compactVerify(a, first.publicKey);
    await compactVerify(b as string, second.publicKey);
    await compactVerify(c as string, first.publicKey);
    await assert.rejects(compactVerify(b as string, first.publicKey));
  } finally {
    await signer.close();
  }
});

test('a thread holds a bounded number of keys; a forgotten key travels again when it signs', async () => {
  const signer = new JwsSigner();
  try {
    const pairs = await Promise.all(Array.from({ length: MAX_THREAD_KEYS + 12 }, es256));
    // One rotation after another: each kid signs once and is then replaced by the next.
    for (const [i, pair] of pairs.entries()) {
      await compactVerify(await signer.sign(header(`k${i}`), `{"n":${i}}`, pair.privateKey), pair.publicKey);
    }
    assert.equal(signer.threadKeyCount, MAX_THREAD_KEYS);
    // k0 was dropped long ago: the thread must be sent it again rather than fail "no private key".
    const first = pairs[0] as (typeof pairs)[number];
    await compactVerify(await signer.sign(header('k0'), '{"again":true}', first.privateKey), first.publicKey);
    assert.equal(signer.threadKeyCount, MAX_THREAD_KEYS);
  } finally {
    await signer.close();
  }
});

test('a crashed signing thread fails the signatures in flight; the next one starts a new thread', async () => {
  const signer = new JwsSigner();
  const internals = signer as unknown as { workerUrl: URL; worker?: { terminate(): Promise<number> } };
  try {
    const { privateKey, publicKey } = await es256();
    await signer.sign(header('k1'), '{}', privateKey);
    // Nothing in flight: the thread stops and is gone. The next one dies when it is handed its first
    // job (test/support/dying-sign-worker.js), so that signature is in flight on a crashed thread.
    // (Stopping the real thread with a job in flight raced with its answer.)
    await internals.worker?.terminate();
    const realThread = internals.workerUrl;
    internals.workerUrl = DYING_THREAD;
    const inFlight = signer.sign(header('k1'), '{"lost":true}', privateKey);
    await assert.rejects(inFlight, /signing thread exited \(code 1\)/);
    internals.workerUrl = realThread;
    // The new thread has not seen the key: it must travel again.
    const after = await signer.sign(header('k1'), '{"n":2}', privateKey);
    await compactVerify(after, publicKey);
  } finally {
    await signer.close();
  }
});

test('close() lets signatures in flight finish, then refuses new ones', async () => {
  const signer = new JwsSigner();
  const { privateKey, publicKey } = await es256();
  const inFlight = Array.from({ length: 20 }, () => signer.sign(header('k1'), '{}', privateKey));
  await new Promise((resolve) => setImmediate(resolve));
  await signer.close();
  for (const token of await Promise.all(inFlight)) await compactVerify(token, publicKey);
  await assert.rejects(signer.sign(header('k1'), '{}', privateKey), /closed/);
});

test('close() that gives up waiting while an answer is on its way still waits for the thread to stop', async () => {
  const signer = new JwsSigner();
  const { privateKey } = await es256();
  await signer.sign(header('k1'), '{}', privateKey);
  const inFlight = signer.sign(header('k1'), '{"late":true}', privateKey).then(
    () => 'signed',
    (err: Error) => err.message,
  );
  await new Promise((resolve) => setImmediate(resolve));
  // close(0) starts its timer, then this thread is busy while the answer arrives: when the event loop
  // resumes, the timer runs before the answer is delivered, so the answer comes after terminate()
  // began. Were the thread still the signer's then, the answer would unref it and, with nothing else
  // alive, the event loop would end with close() pending (node:test: cancelled; checked by making
  // close() forget the thread only after terminate()).
  const closing = signer.close(0);
  const busyUntil = Date.now() + 300;
  while (Date.now() < busyUntil);
  await closing;
  assert.match(await inFlight, /^signed$|closed/);
});

test('token endpoint: a signing thread that dies mid-request → 503 temporarily_unavailable; the next request gets its token', async () => {
  const server = await startServer('pglite', NO_FAILURE_LIMITS);
  try {
    const fx = await createProjectFixture(server);
    const request = () =>
      token(
        server,
        { grant_type: 'client_credentials' },
        { authorization: basic(fx.client.id, fx.client.secret) },
      );
    assert.equal((await request()).status, 200, 'control');
    // The running thread is stopped and gone; the next one dies when it is handed the request's
    // signature (test/support/dying-sign-worker.js), so that signature is in flight on a thread
    // that never answers — deterministic, where stopping the real thread from here raced with it.
    const signer = (server.services.tokens as unknown as { signer: JwsSigner }).signer;
    const internals = signer as unknown as { workerUrl: URL; worker?: { terminate(): Promise<number> } };
    await internals.worker?.terminate();
    const realThread = internals.workerUrl;
    internals.workerUrl = DYING_THREAD;
    const failed = await request();
    internals.workerUrl = realThread;
    assert.equal(failed.status, 503);
    assert.equal(failed.body.error, 'temporarily_unavailable');
    assert.equal(failed.headers.get('cache-control'), 'no-store');
    const next = await request();
    assert.equal(next.status, 200);
    assert.equal(typeof next.body.access_token, 'string');
  } finally {
    await server.close();
  }
});
