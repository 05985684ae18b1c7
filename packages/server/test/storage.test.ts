import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Conflict, Gone, NotFound, PreconditionFailed } from '../src/errors/http-errors.ts';
import type { Patient, ProjectMembership, User } from '../src/model/types.ts';
import { MIGRATIONS, migrate } from '../src/storage/migrations/index.ts';
import { createPostgresDb } from '../src/storage/postgres.ts';
import { ResourceRepository } from '../src/storage/resources.ts';
import { createTestDatabase, createThrowawayPostgres, ENGINES, type TestDatabase } from './support/db.ts';

const PROJECT_A = '11111111-1111-4111-8111-111111111111';
const PROJECT_B = '22222222-2222-4222-8222-222222222222';

for (const engine of ENGINES) {
  describe(`storage on ${engine}`, () => {
    let database: TestDatabase;
    let repo: ResourceRepository;

    before(async () => {
      database = await createTestDatabase(engine);
      const applied = await migrate(database.db);
      assert.deepEqual(
        applied,
        MIGRATIONS.map((m) => m.version),
      );
      repo = new ResourceRepository(database.db);
    });
    after(() => database.drop());

    test('migrations are idempotent: a second run applies nothing', async () => {
      assert.deepEqual(await migrate(database.db), []);
    });

    test('create, read, update with versioning, history, delete', async () => {
      const created = await repo.create<Patient>({
        resourceType: 'Patient',
        meta: { project: PROJECT_A },
        name: [{ family: 'Smith', given: ['Alice'] }],
      });
      assert.match(created.id, /^[0-9a-f-]{36}$/);
      assert.equal(created.meta.project, PROJECT_A);
      const read = await repo.read<Patient>('Patient', created.id);
      assert.deepEqual(read, created);

      const updated = await repo.update<Patient>(
        { ...created, name: [{ family: 'Jones' }] },
        { ifMatch: created.meta.versionId },
      );
      assert.notEqual(updated.meta.versionId, created.meta.versionId);
      assert.equal(updated.meta.project, PROJECT_A);

      // A write based on the old version loses (optimistic locking).
      await assert.rejects(
        repo.update<Patient>({ ...created, name: [{ family: 'Late' }] }, { ifMatch: created.meta.versionId }),
        PreconditionFailed,
      );
      assert.equal((await repo.read<Patient>('Patient', created.id))?.name?.[0]?.family, 'Jones');

      const history = await repo.history('Patient', created.id);
      assert.deepEqual(
        history.map((h) => h.versionId),
        [updated.meta.versionId, created.meta.versionId],
      );

      await repo.delete('Patient', created.id);
      assert.equal(await repo.read('Patient', created.id), undefined);
      await assert.rejects(repo.readOrThrow('Patient', created.id), Gone);
      const afterDelete = await repo.history('Patient', created.id);
      assert.equal(afterDelete.length, 3);
      assert.equal(afterDelete[0]?.deleted, true);
    });

    test('unknown or malformed ids answer not found, never a database error', async () => {
      assert.equal(await repo.read('Patient', 'not-a-uuid'), undefined);
      await assert.rejects(repo.readOrThrow('Patient', "' OR 1=1 --"), NotFound);
      await assert.rejects(repo.readOrThrow('Patient', '33333333-3333-4333-8333-333333333333'), NotFound);
    });

    test('User e-mail is unique per scope (project or server)', async () => {
      const user = (
        email: string,
        project?: string,
      ): Omit<User, 'id' | 'meta'> & { meta?: { project: string } } => ({
        resourceType: 'User',
        firstName: 'A',
        lastName: 'B',
        email,
        ...(project ? { meta: { project }, project: { reference: `Project/${project}` } } : {}),
      });
      await repo.create<User>(user('dup@example.com'));
      await assert.rejects(repo.create<User>(user('dup@example.com')), (err: unknown) => {
        assert.ok(err instanceof Conflict);
        assert.equal(err.expression, 'User.email');
        return true;
      });
      // The same address may exist once per project scope as well.
      await repo.create<User>(user('dup@example.com', PROJECT_A));
      await repo.create<User>(user('dup@example.com', PROJECT_B));
      await assert.rejects(repo.create<User>(user('dup@example.com', PROJECT_A)), Conflict);
      // Lookup prefers the project-scoped user, then the server-scoped one.
      assert.equal((await repo.findUserByEmail('dup@example.com', PROJECT_A))?.meta.project, PROJECT_A);
      assert.equal((await repo.findUserByEmail('dup@example.com'))?.meta.project, undefined);
    });

    test('ProjectMembership.externalId is unique per project', async () => {
      const membership = (
        project: string,
      ): Omit<ProjectMembership, 'id' | 'meta'> & { meta: { project: string } } => ({
        resourceType: 'ProjectMembership',
        meta: { project },
        project: { reference: `Project/${project}` },
        user: { reference: 'User/x' },
        profile: { reference: 'Patient/y' },
        externalId: 'ext-1',
      });
      await repo.create<ProjectMembership>(membership(PROJECT_A));
      await repo.create<ProjectMembership>(membership(PROJECT_B));
      await assert.rejects(repo.create<ProjectMembership>(membership(PROJECT_A)), Conflict);
      const found = await repo.findMembershipByExternalId(PROJECT_B, 'ext-1');
      assert.equal(found?.meta.project, PROJECT_B);
    });

    test('a failed transaction leaves nothing behind', async () => {
      await assert.rejects(
        database.db.transaction(async (tx) => {
          await repo.create<Patient>(
            { resourceType: 'Patient', meta: { project: PROJECT_A }, id: PROJECT_B },
            { tx },
          );
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await repo.read('Patient', PROJECT_B), undefined);
    });
  });
}

if (process.env.TEST_DATABASE_URL) {
  test('two instances migrating one PostgreSQL at once: both succeed, the schema is applied once', async () => {
    const { url, drop } = await createThrowawayPostgres();
    const dbs = Array.from({ length: 4 }, () => createPostgresDb(url, { max: 2 }));
    try {
      const results = await Promise.all(dbs.map((db) => migrate(db)));
      const applied = results.flat();
      assert.deepEqual(
        applied.sort(),
        MIGRATIONS.map((m) => m.version),
      );
      const rows = await dbs[0]!.query<{ n: number }>('SELECT count(*)::int AS n FROM fedhir_migration');
      assert.equal(rows[0]?.n, MIGRATIONS.length);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await drop();
    }
  });
}
