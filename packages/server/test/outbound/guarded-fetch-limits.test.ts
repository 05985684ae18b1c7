/**
 * Redirects, deadline and body cap of the guarded fetch against misbehaving loopback IdPs
 * (RP-19, RP-51, TX-15, TX-17, TX-18; protocol.md §7.6: redirects not followed, 5 s deadline, 1 MiB
 * cap). The tests use a 300 ms deadline so they stay fast.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createGzip } from 'node:zlib';
import { createGuardedFetch, type GuardedFetch } from '../../src/federation/outbound/guarded-fetch.ts';
import { OutboundError, type OutboundErrorCode } from '../../src/federation/outbound/outbound-error.ts';
import { type CountingServer, sleep, startHttpServer } from './loopback-servers.ts';

const TIMEOUT_MS = 300;
const MARGIN_MS = 400;
const MiB = 1024 * 1024;

async function rejectsWith(promise: Promise<unknown>, code: OutboundErrorCode): Promise<OutboundError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof OutboundError, `expected an OutboundError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

/**
 * Asserts that the server-side socket of the last request closes soon, i.e. the client aborted its
 * connection instead of leaving it open or pooling a half-read one (TX-15 "no leaked sockets").
 */
async function closesSoon(socket: Socket | undefined, withinMs = 1000): Promise<void> {
  assert.ok(socket, 'the request reached the server');
  if (socket.destroyed) return;
  const closed = await Promise.race([
    new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
    sleep(withinMs).then(() => false),
  ]);
  assert.ok(closed, 'the client closed its socket');
}

/** 50 MiB of zeros, gzip-compressed (~50 KB), built without holding 50 MiB in memory. */
async function gzipBomb(): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < 50; i++) {
    if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
  }
  gzip.end();
  await done;
  return Buffer.concat(chunks);
}

/** Peak growth of heap + ArrayBuffer memory while `run` runs, sampled every 5 ms. */
async function peakMemoryGrowth(run: () => Promise<unknown>): Promise<number> {
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const base = used();
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, used());
  }, 5);
  try {
    await run();
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, used());
  }
  return peak - base;
}

describe('guarded fetch: redirects, deadline, body cap', () => {
  let fetcher: GuardedFetch;
  let server: CountingServer;
  let internal: CountingServer;
  let bomb: Buffer;
  let lastSocket: Socket | undefined;
  const routes = new Map<string, (res: ServerResponse) => void>();

  before(async () => {
    bomb = await gzipBomb();
    internal = await startHttpServer('127.0.0.1', (_req, res) => res.end('internal'));
    server = await startHttpServer('127.0.0.1', (req, res) => {
      lastSocket = req.socket;
      const route = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (route) route(res);
      else res.end('{}');
    });
    fetcher = createGuardedFetch({ allow: ['127.0.0.1'], timeoutMs: TIMEOUT_MS });
  });
  after(async () => {
    await fetcher.close();
    await server.close();
    await internal.close();
  });

  test('(f) a 3xx is an error; the server is hit once and the location is never followed (RP-51)', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      routes.set(`/redirect-${status}`, (res) => {
        res.writeHead(status, { location: `${internal.origin}/internal?token=abc` });
        res.end('SECRET-BODY');
      });
      const before = server.requests;
      const error = await rejectsWith(fetcher(`${server.origin}/redirect-${status}`), 'redirect');
      assert.equal(server.requests, before + 1);
      assert.equal(error.message, 'outbound request to 127.0.0.1 failed: redirect not followed');
    }
    assert.equal(internal.connections, 0);
  });

  test('(g) a hanging server times out within the deadline and the socket is closed (TX-15)', async () => {
    routes.set('/hang', () => {});
    const started = performance.now();
    await rejectsWith(fetcher(`${server.origin}/hang`), 'timeout');
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= TIMEOUT_MS - 20, `took ${elapsed} ms`);
    assert.ok(elapsed < TIMEOUT_MS + MARGIN_MS, `took ${elapsed} ms`);
    await closesSoon(lastSocket);
  });

  test('(g) a resolver that never answers times out within the deadline', async () => {
    const stuck = createGuardedFetch({
      allow: ['127.0.0.1'],
      timeoutMs: TIMEOUT_MS,
      resolver: () => new Promise(() => {}),
    });
    try {
      const started = performance.now();
      await rejectsWith(stuck('https://idp.example.test/'), 'timeout');
      assert.ok(performance.now() - started < TIMEOUT_MS + MARGIN_MS);
    } finally {
      await stuck.close();
    }
  });

  test('(h) a slow-drip body times out at the total deadline, not per byte (RP-19)', async () => {
    routes.set('/drip', (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      const timer = setInterval(() => res.write('0,'), 20);
      res.on('close', () => clearInterval(timer));
    });
    const started = performance.now();
    await rejectsWith(fetcher(`${server.origin}/drip`), 'timeout');
    assert.ok(performance.now() - started < TIMEOUT_MS + MARGIN_MS);
    await closesSoon(lastSocket);
  });

  test('(h) slow-drip headers time out too', async () => {
    routes.set('/drip-headers', (res) => {
      // Flush a status line and then headers one by one, never finishing them.
      res.socket?.write('HTTP/1.1 200 OK\r\n');
      const timer = setInterval(() => res.socket?.write('x-drip: 1\r\n'), 20);
      res.on('close', () => clearInterval(timer));
    });
    const started = performance.now();
    await rejectsWith(fetcher(`${server.origin}/drip-headers`), 'timeout');
    assert.ok(performance.now() - started < TIMEOUT_MS + MARGIN_MS);
    await closesSoon(lastSocket);
  });

  test('(i) a 5 MB body is too large, with or without Content-Length (RP-19, TX-17)', async () => {
    const big = Buffer.alloc(5 * MiB, 'a');
    routes.set('/big-length', (res) => {
      res.writeHead(200, { 'content-length': big.length });
      res.end(big);
    });
    routes.set('/big-chunked', (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      const pump = () => {
        while (sent < big.length) {
          const chunk = big.subarray(sent, sent + 64 * 1024);
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await rejectsWith(fetcher(`${server.origin}/big-length`), 'too_large');
    await rejectsWith(fetcher(`${server.origin}/big-chunked`), 'too_large');
    await closesSoon(lastSocket);
  });

  test('(i) a gzip bomb (50 MiB of zeros) stops at the decoded cap, memory stays bounded', async (t) => {
    assert.ok(bomb.length < 200 * 1024, `bomb is ${bomb.length} bytes compressed`);
    routes.set('/bomb', (res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': bomb.length,
      });
      res.end(bomb);
    });
    const growth = await peakMemoryGrowth(() => rejectsWith(fetcher(`${server.origin}/bomb`), 'too_large'));
    // 1 MiB cap + decoder buffers; 50 MiB would show up many times over.
    assert.ok(growth < 16 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB`);
    t.diagnostic(`gzip bomb: memory grew by ${(growth / MiB).toFixed(1)} MiB`);
    // No socket assertion here: the ~50 KB compressed message arrives whole before 1 MiB is
    // decoded, so the HTTP exchange is complete and its connection is clean to reuse.
    const response = await fetcher(`${server.origin}/after-bomb`);
    assert.equal(response.status, 200);
  });

  test('(i) the cap is inclusive and counts decoded bytes', async () => {
    const capped = createGuardedFetch({ allow: ['127.0.0.1'], timeoutMs: 2000, maxBodyBytes: 1000 });
    try {
      routes.set('/exact', (res) => res.end(Buffer.alloc(1000, 'x')));
      routes.set('/over', (res) => res.end(Buffer.alloc(1001, 'x')));
      assert.equal((await (await capped(`${server.origin}/exact`)).arrayBuffer()).byteLength, 1000);
      await rejectsWith(capped(`${server.origin}/over`), 'too_large');
    } finally {
      await capped.close();
    }
  });

  test('a caller signal keeps fetch semantics: its own reason is thrown', async () => {
    routes.set('/slow', (res) => setTimeout(() => res.end('{}'), 200));
    const reason = new Error('caller gave up');
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(
      fetcher(`${server.origin}/slow`, { signal: controller.signal }),
      (error) => error === reason,
    );
    await closesSoon(lastSocket);
    const requests = server.requests;
    await assert.rejects(
      fetcher(`${server.origin}/slow`, { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    assert.equal(server.requests, requests, 'an already aborted call sends nothing');
  });

  test('invalid options are refused', () => {
    assert.throws(() => createGuardedFetch({ allow: [], timeoutMs: 0 }), TypeError);
    assert.throws(() => createGuardedFetch({ allow: [], maxBodyBytes: -1 }), TypeError);
    assert.throws(() => createGuardedFetch({ allow: ['10.0.0.0/99'] }), TypeError);
  });
});
