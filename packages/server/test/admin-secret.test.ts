import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basic, createProjectFixture, type ProjectFixture, postForm } from './support/fixtures.ts';
import { call, startServer, type TestServer } from './support/server.ts';

describe('client secret rotation (protocol.md §2)', () => {
  let server: TestServer;
  let fx: ProjectFixture;

  before(async () => {
    server = await startServer('pglite');
    fx = await createProjectFixture(server);
  });
  after(() => server.close());

  const clientCredentials = (secret: string) =>
    postForm(
      server,
      '/oauth2/token',
      { grant_type: 'client_credentials' },
      { authorization: basic(fx.client.id, secret) },
    );

  test('the new secret works at once, the old one until retired; retiring revokes its tokens', async () => {
    const oldToken = await clientCredentials(fx.client.secret);
    assert.equal(oldToken.status, 200);

    const rotated = await call(
      server,
      'POST',
      `/admin/projects/${fx.project.id}/client/${fx.client.id}/secret`,
      {
        token: fx.admin.token,
      },
    );
    assert.equal(rotated.status, 200);
    assert.equal(rotated.headers.get('cache-control'), 'no-store');
    const newSecret = rotated.body.secret as string;
    assert.notEqual(newSecret, fx.client.secret);

    assert.equal((await clientCredentials(newSecret)).status, 200);
    const underRetiring = await clientCredentials(fx.client.secret);
    assert.equal(underRetiring.status, 200, 'the retiring secret still works');
    const read = await call(server, 'GET', `/fhir/R4/ClientApplication/${fx.client.id}`, {
      token: fx.admin.token,
    });
    assert.equal(read.body.secret, undefined);
    assert.equal(read.body.retiringSecretDigest, undefined);

    const retired = await call(
      server,
      'DELETE',
      `/admin/projects/${fx.project.id}/client/${fx.client.id}/secret/retiring`,
      {
        token: fx.admin.token,
      },
    );
    assert.equal(retired.status, 204);
    const refused = await clientCredentials(fx.client.secret);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'invalid_client');
    // A token issued under the retired secret stops working.
    for (const issued of [oldToken, underRetiring]) {
      const me = await call(server, 'GET', '/auth/me', { token: issued.body.access_token as string });
      assert.equal(me.status, 401);
    }
    assert.equal((await clientCredentials(newSecret)).status, 200);

    const again = await call(
      server,
      'DELETE',
      `/admin/projects/${fx.project.id}/client/${fx.client.id}/secret/retiring`,
      {
        token: fx.admin.token,
      },
    );
    assert.equal(again.status, 400);
  });

  test('only admins of the client’s project may rotate', async () => {
    const other = await createProjectFixture(server);
    const res = await call(server, 'POST', `/admin/projects/${fx.project.id}/client/${fx.client.id}/secret`, {
      token: other.admin.token,
    });
    assert.equal(res.status, 403);
    const wrongProject = await call(
      server,
      'POST',
      `/admin/projects/${other.project.id}/client/${fx.client.id}/secret`,
      {
        token: other.admin.token,
      },
    );
    assert.equal(wrongProject.status, 404);
  });
});
