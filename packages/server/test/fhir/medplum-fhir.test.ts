import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MedplumClient } from '@medplum/core';
import type { Patient } from '../../src/model/types.ts';
import { ENGINES } from '../support/db.ts';
import { createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { signedInMedplum } from '../support/medplum.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`FHIR R4 through @medplum/core 4 on ${engine}`, () => {
    let server: TestServer;
    let a: ProjectFixture;
    let b: ProjectFixture;
    let medplumA: MedplumClient;
    let medplumB: MedplumClient;

    before(async () => {
      server = await startServer(engine);
      a = await createProjectFixture(server);
      b = await createProjectFixture(server);
      medplumA = await signedInMedplum(server.baseUrl, a.admin, a.project.id);
      medplumB = await signedInMedplum(server.baseUrl, b.admin, b.project.id);
    });
    after(() => server.close());

    test('create, read, update, search, history, delete', async () => {
      const created = await medplumA.createResource<Patient>({
        resourceType: 'Patient',
        name: [{ given: ['Alice'], family: 'Smith' }],
        identifier: [{ system: 'urn:mrn', value: 'A-1' }],
        telecom: [{ system: 'email', value: 'alice@example.com' }],
        birthDate: '1990-04-01',
      } as never);
      assert.equal(created.resourceType, 'Patient');
      assert.equal(created.meta.project, a.project.id);

      const read = await medplumA.readResource('Patient', created.id);
      assert.equal(read.id, created.id);

      const updated = await medplumA.updateResource({
        ...read,
        name: [{ given: ['Alice'], family: 'Jones' }],
      });
      assert.notEqual(updated.meta?.versionId, created.meta.versionId);

      for (const [query, expected] of [
        [{ family: 'jon' }, 1],
        [{ family: 'Smith' }, 0],
        [{ given: 'ali' }, 1],
        [{ name: 'ALICE' }, 1],
        [{ identifier: 'urn:mrn|A-1' }, 1],
        [{ identifier: 'urn:other|A-1' }, 0],
        [{ email: 'Alice@Example.com' }, 1],
        [{ birthdate: '1990-04-01' }, 1],
        [{ birthdate: 'gt1991-01-01' }, 0],
        [{ _id: created.id }, 1],
      ] as const) {
        const bundle = await medplumA.search('Patient', query as Record<string, string>, {
          cache: 'no-cache',
        });
        assert.equal(bundle.entry?.length ?? 0, expected, JSON.stringify(query));
      }

      const history = await medplumA.readHistory('Patient', created.id);
      assert.equal(history.entry?.length, 2);

      await medplumA.deleteResource('Patient', created.id);
      await assert.rejects(medplumA.readResource('Patient', created.id, { cache: 'no-cache' }));
    });

    test('project isolation: another project sees 404 and empty searches, and cannot overwrite', async () => {
      const mine = await medplumA.createResource<Patient>({
        resourceType: 'Patient',
        name: [{ family: 'Isolated' }],
      } as never);
      await assert.rejects(medplumB.readResource('Patient', mine.id), /not found/i);
      const search = await medplumB.search('Patient', { family: 'Isolated' });
      assert.equal(search.entry?.length ?? 0, 0);
      await assert.rejects(
        medplumB.updateResource({ ...mine, name: [{ family: 'Hijacked' }] }),
        /not found/i,
      );
      await assert.rejects(medplumB.deleteResource('Patient', mine.id), /not found/i);
      await assert.rejects(medplumB.readHistory('Patient', mine.id), /not found/i);
      const still = await medplumA.readResource('Patient', mine.id, { cache: 'no-cache' });
      assert.equal(still.name?.[0]?.family, 'Isolated');
      // A deleted resource of another project is not revealed by a 410 either.
      await medplumA.deleteResource('Patient', mine.id);
      const gone = await call(server, 'GET', `/fhir/R4/Patient/${mine.id}`, {
        token: medplumB.getAccessToken(),
      });
      assert.equal(gone.status, 404);
      const own = await call(server, 'GET', `/fhir/R4/Patient/${mine.id}`, {
        token: medplumA.getAccessToken(),
      });
      assert.equal(own.status, 410);
    });

    test('paging: _count and _offset with next/previous links and a total', async () => {
      for (let i = 0; i < 5; i++) {
        await medplumA.createResource({
          resourceType: 'Observation',
          status: 'final',
          code: { text: `n${i}` },
        } as never);
      }
      const first = await medplumA.search(
        'Observation',
        { _count: '2', _sort: '_lastUpdated' },
        { cache: 'no-cache' },
      );
      assert.equal(first.entry?.length, 2);
      assert.equal(first.total, 5);
      const next = first.link?.find((l: { relation?: string }) => l.relation === 'next')?.url;
      assert.ok(next);
      const second = await medplumA.get(next, { cache: 'no-cache' });
      assert.equal(second.entry.length, 2);
      assert.ok(second.link.find((l: { relation: string }) => l.relation === 'previous'));
      assert.notEqual(second.entry[0].resource.id, first.entry?.[0]?.resource?.id);
    });

    test('If-Match: a stale version answers 412', async () => {
      const p = await medplumA.createResource<Patient>({ resourceType: 'Patient' } as never);
      const token = medplumA.getAccessToken();
      const ok = await call(server, 'PUT', `/fhir/R4/Patient/${p.id}`, {
        token,
        body: { ...p, gender: 'female' },
        headers: { 'if-match': `W/"${p.meta.versionId}"`, 'content-type': 'application/fhir+json' },
      });
      assert.equal(ok.status, 200);
      const stale = await call(server, 'PUT', `/fhir/R4/Patient/${p.id}`, {
        token,
        body: { ...p, gender: 'male' },
        headers: { 'if-match': `W/"${p.meta.versionId}"` },
      });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.resourceType, 'OperationOutcome');
    });

    test('malformed input answers 400 OperationOutcome; no token answers 401 with WWW-Authenticate', async () => {
      const token = medplumA.getAccessToken();
      const cases: [string, string, unknown, number][] = [
        ['POST', '/fhir/R4/Patient', '{"resourceType":', 400],
        ['POST', '/fhir/R4/Patient', { resourceType: 'Observation' }, 400],
        ['POST', '/fhir/R4/Patient', [1, 2], 400],
        [
          'PUT',
          '/fhir/R4/Patient/11111111-1111-4111-8111-111111111111',
          { resourceType: 'Patient', id: 'other' },
          400,
        ],
        ['GET', '/fhir/R4/Patient?unknown-param=1', undefined, 400],
        ['GET', '/fhir/R4/Patient?birthdate=yesterday', undefined, 400],
        ['GET', '/fhir/R4/Patient?_count=-1', undefined, 400],
        ['GET', '/fhir/R4/Patient/not-a-uuid', undefined, 404],
        ['GET', '/fhir/R4/lowercase', undefined, 404],
      ];
      for (const [method, path, body, status] of cases) {
        const res = await call(server, method, path, { token, body });
        assert.equal(res.status, status, `${method} ${path}`);
        assert.equal(res.body.resourceType, 'OperationOutcome', `${method} ${path}`);
      }
      const anonymous = await call(server, 'GET', '/fhir/R4/Patient');
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer');
      const metadata = await call(server, 'GET', '/fhir/R4/metadata');
      assert.equal(metadata.status, 200);
      assert.equal(metadata.body.resourceType, 'CapabilityStatement');
    });

    test('batch runs each entry as its own request', async () => {
      const res = await call(server, 'POST', '/fhir/R4', {
        token: medplumA.getAccessToken(),
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              request: { method: 'POST', url: 'Patient' },
              resource: { resourceType: 'Patient', name: [{ family: 'Batch' }] },
            },
            { request: { method: 'GET', url: 'Patient/22222222-2222-4222-8222-222222222222' } },
            { request: { method: 'GET', url: 'Patient?family=Batch' } },
          ],
        },
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.type, 'batch-response');
      assert.match(res.body.entry[0].response.status, /^201/);
      assert.equal(res.body.entry[1].response.status, '404');
      assert.equal(res.body.entry[2].resource.entry.length, 1);
    });

    test('transaction: all-or-nothing, urn:uuid references resolved', async () => {
      const token = medplumA.getAccessToken();
      const patientUrn = 'urn:uuid:6f1c2a3e-1111-4aaa-8bbb-000000000001';
      const ok = await call(server, 'POST', '/fhir/R4', {
        token,
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: 'urn:uuid:6f1c2a3e-1111-4aaa-8bbb-000000000002',
              request: { method: 'POST', url: 'Observation' },
              resource: {
                resourceType: 'Observation',
                status: 'final',
                code: { text: 'tx' },
                subject: { reference: patientUrn },
              },
            },
            {
              fullUrl: patientUrn,
              request: { method: 'POST', url: 'Patient' },
              resource: { resourceType: 'Patient', name: [{ family: 'Txn' }] },
            },
          ],
        },
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.type, 'transaction-response');
      const [obs, patient] = ok.body.entry.map(
        (e: { resource: { id: string; subject?: { reference: string } } }) => e.resource,
      );
      assert.equal(obs.subject.reference, `Patient/${patient.id}`, 'forward urn:uuid reference resolved');
      assert.equal((await medplumA.readResource('Patient', patient.id)).name?.[0]?.family, 'Txn');

      // The second entry fails: nothing of the first stays.
      const before =
        (await medplumA.search('Patient', { family: 'Rolledback' }, { cache: 'no-cache' })).entry?.length ??
        0;
      const failed = await call(server, 'POST', '/fhir/R4', {
        token,
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              request: { method: 'POST', url: 'Patient' },
              resource: { resourceType: 'Patient', name: [{ family: 'Rolledback' }] },
            },
            {
              request: { method: 'PUT', url: 'Patient/33333333-3333-4333-8333-333333333333' },
              resource: { resourceType: 'Patient', id: '33333333-3333-4333-8333-333333333333' },
            },
          ],
        },
      });
      assert.equal(failed.status, 404);
      assert.equal(failed.body.resourceType, 'OperationOutcome');
      const after =
        (await medplumA.search('Patient', { family: 'Rolledback' }, { cache: 'no-cache' })).entry?.length ??
        0;
      assert.equal(after, before, 'the created Patient was rolled back');
    });

    test('protected fields and secrets: 403 naming the field, nothing changed; secrets never served', async () => {
      const token = a.admin.token;
      const client = (await call(server, 'GET', `/fhir/R4/ClientApplication/${a.client.id}`, { token })).body;
      assert.equal(client.secret, undefined);
      assert.equal(client.secretDigest, undefined);
      const setSecret = await call(server, 'PUT', `/fhir/R4/ClientApplication/${a.client.id}`, {
        token,
        body: { ...client, secret: 'chosen-by-caller' },
      });
      assert.equal(setSecret.status, 403);
      assert.match(setSecret.body.issue[0].details.text, /ClientApplication\.secret/);

      // A read-modify-write that omits the write-only provider secret keeps it.
      const withIdp = await call(server, 'PUT', `/fhir/R4/ClientApplication/${a.client.id}`, {
        token,
        body: {
          ...client,
          identityProvider: {
            authorizeUrl: 'https://idp.example.com/authorize',
            tokenUrl: 'https://idp.example.com/token',
            userInfoUrl: 'https://idp.example.com/userinfo',
            clientId: 'ext-client',
            clientSecret: 'ext-secret',
          },
        },
      });
      assert.equal(withIdp.status, 200, JSON.stringify(withIdp.body));
      assert.equal(withIdp.body.identityProvider.clientSecret, undefined);
      assert.equal(withIdp.body.identityProvider.clientSecretSet, true);
      const rewritten = await call(server, 'PUT', `/fhir/R4/ClientApplication/${a.client.id}`, {
        token,
        body: { ...withIdp.body, description: 'edited' },
      });
      assert.equal(rewritten.body.identityProvider.clientSecretSet, true, 'secret kept on read-modify-write');
      const stored = await server.services.repo.read('ClientApplication', a.client.id);
      const sealed =
        (stored?.identityProvider as { clientSecretSealed?: string } | undefined)?.clientSecretSealed ?? '';
      assert.equal(await server.services.box.open(sealed), 'ext-secret');

      for (const [url, field] of [
        ['http://idp.example.com/token', 'tokenUrl'],
        ['https://169.254.169.254/latest', 'tokenUrl'],
        ['https://127.0.0.1:5432/', 'tokenUrl'],
      ] as const) {
        const bad = await call(server, 'PUT', `/fhir/R4/ClientApplication/${a.client.id}`, {
          token,
          body: { ...client, identityProvider: { tokenUrl: url, clientId: 'x' } },
        });
        assert.equal(bad.status, 400, url);
        assert.match(bad.body.issue[0].details.text, new RegExp(field));
      }
      const sameAudience = await call(server, 'PUT', `/fhir/R4/ClientApplication/${a.client.id}`, {
        token,
        body: {
          ...client,
          identityProvider: { userInfoUrl: 'https://idp.example.com/u', clientId: 'x', audience: 'x' },
        },
      });
      assert.equal(sameAudience.status, 400);

      const project = (await call(server, 'GET', `/fhir/R4/Project/${a.project.id}`, { token })).body;
      const escalate = await call(server, 'PUT', `/fhir/R4/Project/${a.project.id}`, {
        token,
        body: { ...project, superAdmin: true },
      });
      assert.equal(escalate.status, 403);
      assert.match(escalate.body.issue[0].details.text, /Project\.superAdmin/);
      const audit = await call(server, 'POST', '/fhir/R4/AuditEvent', {
        token,
        body: { resourceType: 'AuditEvent' },
      });
      assert.equal(audit.status, 403);
      const login = await call(server, 'GET', '/fhir/R4/Login', { token });
      assert.equal(login.status, 404);
      const users = await call(
        server,
        'GET',
        `/fhir/R4/User/${a.admin.membership.user.reference.split('/')[1]}`,
        { token },
      );
      assert.equal(users.body.passwordHash, undefined);
      const domain = await call(server, 'POST', '/fhir/R4/DomainConfiguration', {
        token,
        body: { resourceType: 'DomainConfiguration', domain: 'example.com' },
      });
      assert.equal(domain.status, 403);
    });

    test('access policy: readonly and type rules; deactivated membership loses access at once', async () => {
      const policy = await call(server, 'POST', '/fhir/R4/AccessPolicy', {
        token: a.admin.token,
        body: {
          resourceType: 'AccessPolicy',
          name: 'read patients',
          resource: [{ resourceType: 'Patient', readonly: true }],
        },
      });
      assert.equal(policy.status, 201);
      const invited = await call(server, 'POST', `/admin/projects/${a.project.id}/invite`, {
        token: a.admin.token,
        body: {
          resourceType: 'Practitioner',
          firstName: 'Reader',
          lastName: 'R',
          email: `reader.${Date.now()}@example.com`,
          password: 'reader-password',
        },
      });
      const membership = invited.body;
      const withPolicy = await call(server, 'PUT', `/fhir/R4/ProjectMembership/${membership.id}`, {
        token: a.admin.token,
        body: { ...membership, accessPolicy: { reference: `AccessPolicy/${policy.body.id}` } },
      });
      assert.equal(withPolicy.status, 200, JSON.stringify(withPolicy.body));
      const reader = await signedInMedplum(
        server.baseUrl,
        { email: membership.user.display, password: 'reader-password' },
        a.project.id,
      );
      const search = await call(server, 'GET', '/fhir/R4/Patient', { token: reader.getAccessToken() });
      assert.equal(search.status, 200);
      const me = await call(server, 'GET', '/auth/me', { token: reader.getAccessToken() });
      assert.equal(me.body.accessPolicy?.id, policy.body.id, '/auth/me carries the access policy');
      const write = await call(server, 'POST', '/fhir/R4/Patient', {
        token: reader.getAccessToken(),
        body: { resourceType: 'Patient' },
      });
      assert.equal(write.status, 403);
      const other = await call(server, 'GET', '/fhir/R4/Observation', { token: reader.getAccessToken() });
      assert.equal(other.status, 403);

      const deactivated = await call(server, 'PUT', `/fhir/R4/ProjectMembership/${membership.id}`, {
        token: a.admin.token,
        body: { ...withPolicy.body, active: false },
      });
      assert.equal(deactivated.status, 200);
      const after = await call(server, 'GET', '/fhir/R4/Patient', { token: reader.getAccessToken() });
      assert.equal(after.status, 401);
    });
  });
}
