import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClientApplication, Project, ProjectMembership } from '../src/model/types.ts';
import { ENGINES } from './support/db.ts';
import { call, startServer, type TestServer, tokenForMembership } from './support/server.ts';

for (const engine of ENGINES) {
  describe(`admin API on ${engine}`, () => {
    let server: TestServer;
    let superToken: string;

    before(async () => {
      server = await startServer(engine);
      superToken = await tokenForMembership(server.services, server.adminMembership);
    });
    after(() => server.close());

    test('without a bearer token: 401 OperationOutcome with WWW-Authenticate: Bearer, body not parsed', async () => {
      const res = await call(server, 'POST', '/admin/projects', { body: '{not json' });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.equal(res.body.resourceType, 'OperationOutcome');
      const bad = await call(server, 'POST', '/admin/projects', {
        body: { name: 'x' },
        token: 'abc.def.ghi',
      });
      assert.equal(bad.status, 401);
      assert.equal(bad.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    });

    test('super admin creates a project and becomes its admin; it then invites and creates clients', async () => {
      const created = await call(server, 'POST', '/admin/projects', {
        token: superToken,
        body: { name: 'Clinic' },
      });
      assert.equal(created.status, 201);
      const project = created.body as Project;
      assert.equal(project.resourceType, 'Project');
      assert.equal(project.name, 'Clinic');
      assert.equal(project.superAdmin, undefined);

      const invited = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
        token: superToken,
        headers: { 'content-type': 'application/fhir+json' },
        body: {
          resourceType: 'Practitioner',
          firstName: 'Alice',
          lastName: 'Smith',
          email: '  Alice@Example.COM ',
          password: 'a long enough password',
          admin: true,
        },
      });
      assert.equal(invited.status, 201);
      const membership = invited.body as ProjectMembership;
      assert.equal(membership.resourceType, 'ProjectMembership');
      assert.equal(membership.project.reference, `Project/${project.id}`);
      assert.match(membership.profile.reference, /^Practitioner\//);
      assert.equal(membership.admin, true);
      const user = await server.services.repo.read('User', membership.user.reference.split('/')[1]!);
      assert.equal(user?.email, 'alice@example.com', 'e-mail normalised at write');
      assert.match(String(user?.passwordHash), /^\$argon2id\$/);

      // Alice, a project admin, administers her project but cannot create projects.
      const aliceToken = await tokenForMembership(server.services, membership);
      const client = await call(server, 'POST', `/admin/projects/${project.id}/client`, {
        token: aliceToken,
        body: { name: 'Web app', redirectUris: ['https://app.example.com/callback', 'http://127.0.0.1/cb'] },
      });
      assert.equal(client.status, 201);
      const app = client.body as ClientApplication;
      assert.equal(typeof app.secret, 'string');
      assert.ok(Buffer.from(app.secret as string, 'base64url').length >= 32, 'secret has ≥ 32 random bytes');
      assert.equal((app as Record<string, unknown>).secretDigest, undefined);
      assert.deepEqual(app.redirectUris, ['https://app.example.com/callback', 'http://127.0.0.1/cb']);
      const stored = await server.services.repo.read<ClientApplication>('ClientApplication', app.id);
      assert.equal(stored?.secret, undefined, 'the plain secret is not stored');
      const clientMemberships = await server.services.repo.findMemberships(
        `ClientApplication/${app.id}`,
        project.id,
      );
      assert.equal(clientMemberships.length, 1);

      const forbidden = await call(server, 'POST', '/admin/projects', {
        token: aliceToken,
        body: { name: 'Mine' },
      });
      assert.equal(forbidden.status, 403);
      assert.equal(forbidden.body.resourceType, 'OperationOutcome');

      // A project admin of one project cannot administer another.
      const other = await call(server, 'POST', '/admin/projects', {
        token: superToken,
        body: { name: 'Other' },
      });
      const cross = await call(server, 'POST', `/admin/projects/${other.body.id}/invite`, {
        token: aliceToken,
        body: { resourceType: 'Patient', firstName: 'P', lastName: 'Q', email: 'p@example.com' },
      });
      assert.equal(cross.status, 403);

      // Duplicate externalId in one project → 409 naming the field.
      const first = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
        token: aliceToken,
        body: { resourceType: 'Patient', firstName: 'Bob', lastName: 'B', externalId: 'ext-42' },
      });
      assert.equal(first.status, 201);
      assert.equal(first.body.externalId, 'ext-42');
      const dup = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
        token: aliceToken,
        body: { resourceType: 'Patient', firstName: 'Bob', lastName: 'C', externalId: 'ext-42' },
      });
      assert.equal(dup.status, 409);
      assert.match(dup.body.issue[0].details.text, /externalId/);
    });

    test('malformed admin requests answer 400 OperationOutcome naming the field; unknown project 404', async () => {
      const cases: [string, unknown, RegExp][] = [
        ['/admin/projects', {}, /name/],
        ['/admin/projects', { name: 42 }, /name/],
        ['/admin/projects', '[1,2', /JSON/],
      ];
      for (const [path, body, pattern] of cases) {
        const res = await call(server, 'POST', path, { token: superToken, body });
        assert.equal(res.status, 400, `${JSON.stringify(body)}`);
        assert.equal(res.body.resourceType, 'OperationOutcome');
        assert.match(res.body.issue[0].details.text, pattern);
      }
      const project = (
        await call(server, 'POST', '/admin/projects', { token: superToken, body: { name: 'P2' } })
      ).body;
      const invalid: [unknown, RegExp][] = [
        [{ resourceType: 'Device', firstName: 'a', lastName: 'b', email: 'a@example.com' }, /resourceType/],
        [{ resourceType: 'Patient', firstName: 'a', lastName: 'b', email: 'not-an-email' }, /email/],
        [{ resourceType: 'Patient', firstName: 'a', lastName: 'b', email: 'a\u200b@example.com' }, /email/],
        [{ resourceType: 'Patient', firstName: 'a', lastName: 'b' }, /email or externalId/],
        [
          {
            resourceType: 'Patient',
            firstName: 'a',
            lastName: 'b',
            email: 'a@example.com',
            password: 'short',
          },
          /password/,
        ],
        [
          { resourceType: 'Patient', firstName: 'a', lastName: 'b', email: 'a@example.com', admin: 'yes' },
          /admin/,
        ],
      ];
      for (const [body, pattern] of invalid) {
        const res = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
          token: superToken,
          body,
        });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.match(res.body.issue[0].details.text, pattern);
      }
      for (const uri of [
        'javascript:alert(1)',
        'http://app.example.com/cb',
        'https://app.example.com/*',
        'https://a.example.com/#x',
        'relative/path',
      ]) {
        const res = await call(server, 'POST', `/admin/projects/${project.id}/client`, {
          token: superToken,
          body: { name: 'c', redirectUris: [uri] },
        });
        assert.equal(res.status, 400, uri);
        assert.match(res.body.issue[0].details.text, /redirectUris\[0\]/);
      }
      const missing = await call(
        server,
        'POST',
        '/admin/projects/99999999-9999-4999-8999-999999999999/invite',
        {
          token: superToken,
          body: { resourceType: 'Patient', firstName: 'a', lastName: 'b', email: 'z@example.com' },
        },
      );
      assert.equal(missing.status, 404);
      const garbage = await call(server, 'POST', '/admin/projects/not-a-project/client', {
        token: superToken,
        body: { name: 'c' },
      });
      assert.equal(garbage.status, 404);
    });

    test('inviting an existing e-mail twice attaches the same user; a conflicting scope is refused cleanly', async () => {
      const project = (
        await call(server, 'POST', '/admin/projects', { token: superToken, body: { name: 'P3' } })
      ).body;
      const body = {
        resourceType: 'Practitioner',
        firstName: 'Carol',
        lastName: 'C',
        email: 'carol@example.com',
      };
      const a = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
        token: superToken,
        body,
      });
      const b = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
        token: superToken,
        body,
      });
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.equal(a.body.user.reference, b.body.user.reference);
    });
  });
}
