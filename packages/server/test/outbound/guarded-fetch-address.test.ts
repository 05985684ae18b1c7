/**
 * Connect-time address checks of the guarded fetch (RP-49, RP-50, TX-18; protocol.md §8 "Outbound
 * guard"). Every server here listens on loopback, and every target is loopback, so even a broken
 * guard could not send traffic off the machine. Blocked calls are proved by the servers' TCP
 * connection counters staying at zero.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { createGuardedFetch, type GuardedFetch } from '../../src/federation/outbound/guarded-fetch.ts';
import { OutboundError, type OutboundErrorCode } from '../../src/federation/outbound/outbound-error.ts';
import {
  type CountingServer,
  canListen,
  selfSignedCertificate,
  startHttpServer,
  startHttpsServer,
  startTcpServer,
} from './loopback-servers.ts';

const json = (body: unknown) => (_req: unknown, res: import('node:http').ServerResponse) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
};

/** A resolver stub mapping every name to `addresses`, counting its calls. */
function fixedResolver(...addresses: string[]) {
  const resolver = async (_host: string) => {
    resolver.calls++;
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  resolver.calls = 0;
  return resolver;
}

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

describe('guarded fetch: addresses', () => {
  let idp: CountingServer;
  let other: CountingServer;
  const fetchers: GuardedFetch[] = [];
  const guarded = (options: Parameters<typeof createGuardedFetch>[0]) => {
    const fetcher = createGuardedFetch({ timeoutMs: 2000, ...options });
    fetchers.push(fetcher);
    return fetcher;
  };

  before(async () => {
    idp = await startHttpServer('127.0.0.1', json({ ok: true }));
    other = await startHttpServer('127.0.0.2', json({ reached: '127.0.0.2' }));
  });
  after(async () => {
    await Promise.all(fetchers.map((f) => f.close()));
    await idp.close();
    await other.close();
  });

  test('(a) loopback is blocked when the allow list is empty, in every notation; no connection', async () => {
    const fetcher = guarded({ allow: [] });
    const port = idp.port;
    await rejectsWith(fetcher(`http://127.0.0.1:${port}/`), 'blocked_scheme');
    for (const host of [
      '127.0.0.1',
      '0x7f000001',
      '2130706433',
      '017700000001',
      '127.1',
      '[::ffff:127.0.0.1]',
    ]) {
      await rejectsWith(fetcher(`https://${host}:${port}/`), 'blocked_address');
    }
    await rejectsWith(fetcher(new URL(`https://127.0.0.1:${port}/`)), 'blocked_address');
    await rejectsWith(fetcher(new Request(`https://127.0.0.1:${port}/`)), 'blocked_address');
    assert.equal(idp.connections, 0);
    assert.equal(idp.requests, 0);
  });

  test('(b) loopback is reached when 127.0.0.1 is allow-listed', async () => {
    const fetcher = guarded({ allow: ['127.0.0.1'] });
    const before = idp.requests;
    const response = await fetcher(`http://127.0.0.1:${idp.port}/`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true });
    assert.equal(idp.requests, before + 1);
  });

  test('(c) 127.0.0.2 stays blocked when only 127.0.0.1 is allow-listed; no connection', async () => {
    const fetcher = guarded({ allow: ['127.0.0.1'], resolver: fixedResolver('127.0.0.2') });
    await rejectsWith(fetcher(`http://127.0.0.2:${other.port}/`), 'blocked_scheme');
    await rejectsWith(fetcher(`https://127.0.0.2:${other.port}/`), 'blocked_address');
    // Through a name, so the check that refuses is the connect-time one.
    await rejectsWith(fetcher(`https://idp.example.test:${other.port}/`), 'blocked_address');
    assert.equal(other.connections, 0);
  });

  test('(c) a name answering an allowed and a non-allowed address is refused as a whole', async () => {
    const resolver = fixedResolver('127.0.0.1', '127.0.0.2');
    const fetcher = guarded({ allow: ['127.0.0.1'], resolver });
    const connections = idp.connections;
    await rejectsWith(fetcher(`https://idp.example.test:${idp.port}/`), 'blocked_address');
    assert.equal(idp.connections, connections);
    assert.equal(other.connections, 0);
  });

  test('(d) [::1] is blocked unless allow-listed', async (t) => {
    if (!(await canListen('::1'))) {
      t.skip('IPv6 loopback is unavailable here');
      return;
    }
    const v6 = await startHttpServer('::1', json({ reached: '::1' }));
    try {
      const blocked = guarded({ allow: ['127.0.0.1'], resolver: fixedResolver('::1') });
      await rejectsWith(blocked(`https://[::1]:${v6.port}/`), 'blocked_address');
      await rejectsWith(blocked(`https://[0:0:0:0:0:0:0:1]:${v6.port}/`), 'blocked_address');
      await rejectsWith(blocked(`http://[::1]:${v6.port}/`), 'blocked_scheme');
      await rejectsWith(blocked(`https://idp.example.test:${v6.port}/`), 'blocked_address');
      assert.equal(v6.connections, 0);

      const allowed = guarded({ allow: ['::1'] });
      const response = await allowed(`http://[::1]:${v6.port}/`);
      assert.deepEqual(await response.json(), { reached: '::1' });
      assert.equal(v6.requests, 1);
    } finally {
      await v6.close();
    }
  });

  test('(e) a name whose resolver answers a non-allowed address is blocked before connecting', async () => {
    const resolver = fixedResolver('127.0.0.2');
    const fetcher = guarded({ allow: [], resolver });
    await rejectsWith(fetcher(`https://idp.example.test:${other.port}/`), 'blocked_address');
    assert.equal(resolver.calls, 1);
    assert.equal(other.connections, 0);
  });

  test('(e) the Host header names the URL host while the socket goes to the resolved address', async () => {
    const seen: Array<string | undefined> = [];
    const echo = await startHttpServer('127.0.0.1', (req, res) => {
      seen.push(req.headers.host);
      res.end('{}');
    });
    try {
      const resolver = fixedResolver('127.0.0.1');
      const fetcher = guarded({ allow: ['idp.example.test'], resolver });
      const response = await fetcher(`http://idp.example.test:${echo.port}/x?y=1`);
      assert.equal(response.status, 200);
      assert.deepEqual(seen, [`idp.example.test:${echo.port}`]);
      assert.equal(resolver.calls, 1);
    } finally {
      await echo.close();
    }
  });

  test('(e) DNS rebinding: the socket goes only to the address that was checked', async () => {
    // Two raw TCP listeners on the same port: 127.0.0.1 (allowed) and 127.0.0.2 (not allowed).
    const checked = await startTcpServer('127.0.0.1');
    let rebound: CountingServer;
    try {
      rebound = await startTcpServer('127.0.0.2', checked.port);
    } catch {
      await checked.close();
      assert.fail('could not bind 127.0.0.2 on the same port');
    }
    try {
      let calls = 0;
      // First answer passes the check; every later answer would point elsewhere.
      const resolver = async () => {
        calls++;
        return [{ address: calls === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
      };
      const fetcher = guarded({ allow: ['127.0.0.1'], resolver });
      // The listener drops the TLS handshake, so the call fails, but it shows where the socket went.
      await rejectsWith(fetcher(`https://rebind.example.test:${checked.port}/`), 'network');
      assert.equal(calls, 1, 'one resolution per connection: the check is the connect');
      assert.equal(checked.connections, 1);
      assert.equal(rebound.connections, 0);
      // The next connection resolves again, now to 127.0.0.2, and is refused before connecting.
      await rejectsWith(fetcher(`https://rebind.example.test:${checked.port}/`), 'blocked_address');
      assert.equal(checked.connections, 1);
      assert.equal(rebound.connections, 0);
    } finally {
      await checked.close();
      await rebound.close();
    }
  });

  test('TLS: SNI carries the URL host, and an untrusted certificate fails closed (RP-50)', async (t) => {
    const credentials = selfSignedCertificate('idp.example.test');
    if (!credentials) {
      t.skip('openssl is unavailable to make a test certificate');
      return;
    }
    const servernames: string[] = [];
    const tlsIdp = await startHttpsServer('127.0.0.1', credentials, (name) => servernames.push(name));
    try {
      const fetcher = guarded({ allow: ['127.0.0.1'], resolver: fixedResolver('127.0.0.1') });
      await rejectsWith(fetcher(`https://idp.example.test:${tlsIdp.port}/`), 'network');
      assert.deepEqual(servernames, ['idp.example.test']);
      assert.equal(tlsIdp.connections, 1);
      assert.equal(tlsIdp.requests, 0, 'no HTTP request over an unverified connection');
    } finally {
      await tlsIdp.close();
    }
  });

  test('no source file of the guard disables certificate checks (RP-50)', async () => {
    const dir = new URL('../../src/federation/outbound/', import.meta.url);
    for (const name of await readdir(dir)) {
      const source = await readFile(new URL(name, dir), 'utf8');
      assert.doesNotMatch(
        source,
        /rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED|checkServerIdentity/,
        name,
      );
    }
  });

  test('errors name the host, never the query string', async () => {
    const fetcher = guarded({ allow: [] });
    const error = await rejectsWith(
      fetcher(`https://127.0.0.1:${idp.port}/token?client_secret=s3cr3t`),
      'blocked_address',
    );
    assert.match(error.message, /127\.0\.0\.1/);
    assert.doesNotMatch(error.message, /s3cr3t|client_secret/);
    assert.equal(error.host, '127.0.0.1');
  });

  test('file:, data:, gopher: and ftp: are refused', async () => {
    const fetcher = guarded({ allow: ['localhost', '127.0.0.1'] });
    for (const url of [
      'file:///etc/passwd',
      'data:application/json,{}',
      'gopher://127.0.0.1:70/',
      'ftp://127.0.0.1/',
    ]) {
      await rejectsWith(fetcher(url), 'blocked_scheme');
    }
  });
});
