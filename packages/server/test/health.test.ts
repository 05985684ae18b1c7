import assert from 'node:assert/strict';
import { test } from 'node:test';
import { call, startServer } from './support/server.ts';

test('GET /healthcheck answers ok with storage and version, and 503 when storage is down', async () => {
  const server = await startServer('pglite');
  try {
    const ok = await call(server, 'GET', '/healthcheck');
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body).sort(), ['ok', 'storage', 'version']);
    assert.equal(ok.body.ok, true);
    assert.equal(ok.body.storage, 'pglite');
    assert.match(ok.body.version, /^\d+\.\d+\.\d+/);

    await server.services.db.close();
    const down = await call(server, 'GET', '/healthcheck');
    assert.equal(down.status, 503);
    assert.equal(down.body.ok, false);
  } finally {
    await server.app.close();
    await server.services.close().catch(() => {});
  }
});
