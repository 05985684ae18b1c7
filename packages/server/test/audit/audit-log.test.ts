import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { AUDIT_ACTIONS, cleanReason, toAuditRecord } from '../../src/audit/audit-event.ts';
import { type AuditEvent, AuditLog, type AuditLogger } from '../../src/audit/audit-log.ts';
import { AuditStore, insertParameters } from '../../src/audit/audit-store.ts';
import type { Db, Queryable } from '../../src/storage/db.ts';
import { MIGRATIONS, migrate } from '../../src/storage/migrations/index.ts';
import { ResourceRepository } from '../../src/storage/resources.ts';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.ts';

const PROJECT = '33333333-3333-4333-8333-333333333333';
const USER = '44444444-4444-4444-8444-444444444444';
const CLIENT = '55555555-5555-4555-8555-555555555555';
const LOGIN = '66666666-6666-4666-8666-666666666666';

/** A Db that counts statements and can be told to fail. */
interface Probe {
  statements: number;
  /** Decides, per statement, whether to fail (before running it) or to run it and then fail. */
  fail?: (sql: string, params: readonly unknown[] | undefined) => 'before' | 'after' | undefined;
}

function probe(db: Db, p: Probe): Db {
  const transient = () => Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
  return {
    engine: db.engine,
    async query<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
      p.statements++;
      const mode = p.fail?.(sql, params);
      if (mode === 'before') throw transient();
      const rows = await db.query<T>(sql, params);
      if (mode === 'after') throw transient(); // committed, but the answer is lost
      return rows;
    },
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => db.transaction(fn),
    ping: () => db.ping(),
    close: () => db.close(),
  };
}

function capture(): AuditLogger & { lines: { obj: object; msg: string }[] } {
  const lines: { obj: object; msg: string }[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ obj, msg }),
    error: (obj, msg) => lines.push({ obj, msg }),
  };
}

test('a batch sends a value its events share once, and per-event values as arrays', () => {
  const token = (userId: string | undefined) =>
    toAuditRecord({
      action: 'token',
      outcome: 'success',
      ip: '192.0.2.1',
      userId,
      clientId: CLIENT,
      projectId: PROJECT,
    });
  const batch = [token(USER), token(undefined), token(USER)];
  const params = insertParameters(batch);
  // $1–$10: id, recorded, then project, action, outcome, reason, ip, user, client, login; $11–$18: the shared values.
  assert.equal(params.length, 18);
  assert.deepEqual(
    params[0],
    batch.map((r) => r.id),
  );
  assert.deepEqual(
    params[1],
    batch.map((r) => r.recorded),
  );
  const [project, action, outcome, reason, ip, user, client, login] = params.slice(2, 10);
  for (const shared of [project, action, outcome, reason, ip, client, login]) assert.deepEqual(shared, []);
  assert.deepEqual(user, [USER, null, USER]);
  assert.deepEqual(params.slice(10), [PROJECT, 'token', 0, null, '192.0.2.1', null, CLIENT, null]);
});

for (const engine of ENGINES) {
  describe(`AuditLog on ${engine}`, () => {
    let database: TestDatabase;

    before(async () => {
      database = await createTestDatabase(engine);
      await migrate(database.db);
    });
    after(() => database.drop());
    beforeEach(async () => {
      await database.db.query('DELETE FROM audit_event');
    });

    async function stored(): Promise<AuditEvent[]> {
      return (
        await database.db.query<{ content: AuditEvent }>(
          `SELECT content FROM audit_event_resource ORDER BY content->>'recorded', id`,
        )
      ).map((r) => r.content);
    }

    /** AuditEvents written as generic resources (there must be none: they have their own table). */
    async function genericRows(): Promise<number> {
      const rows = await database.db.query<{ n: string | number }>(
        `SELECT (SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent')
           + (SELECT count(*) FROM resource_history WHERE resource_type = 'AuditEvent') AS n`,
      );
      return Number(rows[0]?.n);
    }

    test('1000 events: nothing written during record(), all written after flush() in few statements', async () => {
      const p: Probe = { statements: 0 };
      const audit = new AuditLog(new AuditStore(probe(database.db, p)), { logger: capture() });
      for (let i = 0; i < 1000; i++) {
        audit.record({ action: 'client-credentials', outcome: 'success', clientId: CLIENT, ip: '192.0.2.1' });
      }
      assert.equal(p.statements, 0, 'record() must not touch the database synchronously');
      await audit.flush();
      assert.ok(p.statements <= 5, `${p.statements} statements for 1000 events`);
      assert.equal((await stored()).length, 1000);
      // Compact rows of their own, no history rows; the one version is the current row.
      assert.equal(await genericRows(), 0);
      const one = (await stored())[0] as { id: string };
      const versions = await new ResourceRepository(database.db).history('AuditEvent', one.id);
      assert.equal(versions.length, 1);
      assert.deepEqual(audit.stats(), {
        pending: 0,
        written: 1000,
        overflowed: 0,
        rejected: 0,
        failedWrites: 0,
      });
      await audit.close();
    });

    test('a batch stores each column as recorded, whether its value is shared by the batch or not', async () => {
      const OTHER_USER = '77777777-7777-4777-8777-777777777777';
      const records = [
        toAuditRecord({
          action: 'token',
          outcome: 'success',
          ip: '192.0.2.1',
          userId: USER,
          clientId: CLIENT,
          loginId: LOGIN,
          projectId: PROJECT,
        }),
        toAuditRecord({
          action: 'token',
          outcome: 'success',
          ip: '192.0.2.1',
          userId: OTHER_USER,
          clientId: CLIENT,
          projectId: PROJECT,
        }),
        toAuditRecord({
          action: 'token',
          outcome: 'minor-failure',
          reason: 'invalid_grant',
          ip: '192.0.2.1',
          clientId: CLIENT,
          projectId: PROJECT,
        }),
      ];
      // Shared by all three: action, ip, client_id, project_id, and — as the second batch — all of them.
      // Varying: outcome, reason (NULL, NULL, text), user_id (two users, then NULL), login_id (one, then NULLs).
      await new AuditStore(database.db).append(records);
      const single = toAuditRecord({ action: 'logout', outcome: 'success', loginId: LOGIN });
      await new AuditStore(database.db).append([single]);
      const rows = await database.db.query<Record<string, unknown>>(
        `SELECT id::text, to_char(recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded,
           action, outcome, reason, ip, user_id::text, client_id::text, login_id::text, project_id::text
         FROM audit_event`,
      );
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const record of [...records, single]) {
        assert.deepEqual(byId.get(record.id), {
          id: record.id,
          recorded: record.recorded,
          action: record.action,
          outcome: record.outcome,
          reason: record.reason,
          ip: record.ip,
          user_id: record.userId,
          client_id: record.clientId,
          login_id: record.loginId,
          project_id: record.projectId,
        });
      }
      assert.equal(rows.length, 4);
    });

    test('event ids are time-ordered (UUIDv7): the primary key grows in the order events were recorded', async () => {
      const audit = new AuditLog(new AuditStore(database.db), { logger: capture() });
      // Reasons carry the order of the record() calls; several land in the same millisecond.
      for (let i = 0; i < 500; i++) {
        audit.record({
          action: 'refresh',
          outcome: 'minor-failure',
          reason: `n${String(i).padStart(3, '0')}`,
        });
      }
      await audit.flush();
      const rows = await database.db.query<{ id: string; reason: string }>(
        'SELECT id::text AS id, reason FROM audit_event ORDER BY id',
      );
      assert.equal(rows.length, 500);
      assert.deepEqual(
        rows.map((r) => r.reason),
        Array.from({ length: 500 }, (_, i) => `n${String(i).padStart(3, '0')}`),
      );
      for (const { id } of rows)
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      await audit.close();
    });

    test('every action is rendered with its DICOM type and standard subtype', async () => {
      const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
      const expected: Record<string, { type: string; standard?: string }> = {
        login: { type: '110114', standard: '110122' },
        token: { type: '110114', standard: '110122' },
        refresh: { type: '110114', standard: '110122' },
        exchange: { type: '110114', standard: '110122' },
        'external-login': { type: '110114', standard: '110122' },
        'client-credentials': { type: '110114', standard: '110122' },
        revoke: { type: '110114', standard: '110123' },
        logout: { type: '110114', standard: '110123' },
        userinfo: { type: '110112' },
        introspect: { type: '110112' },
      };
      assert.deepEqual(
        Object.keys(expected).sort(),
        [...AUDIT_ACTIONS].sort(),
        'every action has an expectation',
      );
      const audit = new AuditLog(new AuditStore(database.db));
      for (const action of AUDIT_ACTIONS) audit.record({ action, outcome: 'success' });
      await audit.flush();
      const events = await stored();
      assert.equal(events.length, AUDIT_ACTIONS.length);
      for (const event of events) {
        const action = event.subtype[0]?.code as string;
        assert.deepEqual(event.subtype[0], {
          system: 'urn:fedhir:audit-action',
          code: action,
          display: action,
        });
        assert.equal(event.type.system, DCM);
        assert.equal(event.type.code, expected[action]?.type, action);
        assert.equal(event.subtype[1]?.code, expected[action]?.standard, action);
        assert.equal(event.subtype.length, expected[action]?.standard ? 2 : 1, action);
        // One version: its id, recorded when the event happened.
        assert.equal(event.meta.versionId, event.id);
        assert.equal(event.meta.lastUpdated, event.recorded);
      }
      await audit.close();
    });

    test('under steady load batches stay full: events that arrive during a write wait for their own batch', async () => {
      const p: Probe = { statements: 0 };
      const counted = probe(database.db, p);
      const slow: Db = {
        ...counted,
        // Each write takes a while, as it does when the database thread is busy.
        query: async <T>(sql: string, params?: readonly unknown[]) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return counted.query<T>(sql, params);
        },
      };
      const audit = new AuditLog(new AuditStore(slow), { batchSize: 200, flushIntervalMs: 50 });
      // ~2 events per millisecond for ~400 ms.
      for (let tick = 0; tick < 200; tick++) {
        for (let i = 0; i < 4; i++)
          audit.record({ action: 'client-credentials', outcome: 'success', clientId: CLIENT });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await audit.flush();
      assert.equal((await stored()).length, 800);
      // 4 full batches, plus at most one partial batch per interval; a write per round trip would
      // have been one statement per few events (dozens).
      assert.ok(p.statements <= 16, `${p.statements} statements for 800 events`);
      await audit.close();
    });

    test('a partial batch is written by the timer, without flush()', async () => {
      const audit = new AuditLog(new AuditStore(database.db), { flushIntervalMs: 50 });
      audit.record({ action: 'logout', outcome: 'success', userId: USER, loginId: LOGIN });
      const deadline = Date.now() + 3000;
      while (audit.stats().written < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal((await stored()).length, 1);
      await audit.close();
    });

    test('the stored AuditEvent has the FHIR R4 shape', async () => {
      const audit = new AuditLog(new AuditStore(database.db));
      const time = new Date('2025-01-02T03:04:05.000Z');
      audit.record({
        action: 'login',
        outcome: 'minor-failure',
        reason: 'invalid password',
        ip: '2001:db8::1',
        userId: USER,
        clientId: CLIENT,
        loginId: LOGIN,
        projectId: PROJECT,
        time,
      });
      audit.record({ action: 'userinfo', outcome: 'success', userId: USER });
      await audit.flush();
      const [login, query] = await stored();
      assert.ok(login && query);
      assert.equal(login.resourceType, 'AuditEvent');
      assert.match(login.id, /^[0-9a-f-]{36}$/);
      assert.match(login.meta.versionId, /^[0-9a-f-]{36}$/);
      assert.equal(login.meta.project, PROJECT);
      assert.deepEqual(login.type, {
        system: 'http://dicom.nema.org/resources/ontology/DCM',
        code: '110114',
        display: 'User Authentication',
      });
      assert.equal(login.subtype[0]?.code, 'login');
      assert.deepEqual(login.subtype[1], {
        system: 'http://dicom.nema.org/resources/ontology/DCM',
        code: '110122',
        display: 'Login',
      });
      assert.equal(login.action, 'E');
      assert.equal(login.recorded, time.toISOString());
      assert.equal(login.outcome, '4');
      assert.equal(login.outcomeDesc, 'invalid password');
      assert.deepEqual(login.agent, [
        {
          who: { reference: `User/${USER}` },
          requestor: true,
          network: { address: '2001:db8::1', type: '2' },
        },
        { who: { reference: `ClientApplication/${CLIENT}` }, requestor: false },
      ]);
      assert.equal(login.source.observer.display, 'fedhir');
      assert.deepEqual(login.entity, [{ what: { reference: `Login/${LOGIN}` } }]);
      // The project column is set too, so project admins find it.
      const rows = await database.db.query<{ project_id: string }>(
        'SELECT project_id FROM audit_event WHERE id = $1',
        [login.id],
      );
      assert.equal(rows[0]?.project_id, PROJECT);

      assert.equal(query.type.code, '110112');
      assert.equal(query.outcome, '0');
      assert.equal(query.meta.project, undefined);
      assert.equal(query.entity, undefined);
      await audit.close();
    });

    test('ids that are not UUIDs, bad addresses and token-shaped reasons never reach the store', async () => {
      const audit = new AuditLog(new AuditStore(database.db));
      const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl';
      audit.record({
        action: 'token',
        outcome: 'minor-failure',
        reason: `bad code\n${jwt} secret=${'A'.repeat(40)}`,
        clientId: "attacker-typed' client",
        projectId: 'not-a-uuid',
        userId: 'x',
        ip: 'not an ip',
        ...({ password: 'hunter2', refresh_token: 'r' } as object),
      });
      await audit.flush();
      const [event] = await stored();
      assert.ok(event);
      const text = JSON.stringify(event);
      for (const secret of [jwt, 'A'.repeat(40), 'hunter2', 'attacker-typed', 'not-a-uuid', 'not an ip']) {
        assert.ok(!text.includes(secret), `${secret} leaked`);
      }
      assert.deepEqual(event.agent, [{ requestor: true }]);
      assert.equal(event.outcomeDesc, 'bad code [redacted] [redacted]');
      assert.equal(cleanReason('too many words '.repeat(40)).length, 200);
      await audit.close();
    });

    test('a database failure loses nothing: the batch is retried with back-off', async () => {
      let failures = 0;
      const p: Probe = {
        statements: 0,
        fail: () => (failures++ < 2 ? 'before' : undefined),
      };
      const logger = capture();
      const audit = new AuditLog(new AuditStore(probe(database.db, p)), { retryBaseMs: 20, logger });
      for (let i = 0; i < 450; i++) audit.record({ action: 'refresh', outcome: 'success', userId: USER });
      await audit.flush();
      assert.equal((await stored()).length, 450);
      assert.equal(await genericRows(), 0);
      assert.equal(audit.stats().failedWrites, 2);
      assert.ok(
        logger.lines.some((l) => l.msg.startsWith('AUDIT:')),
        'the failure is logged',
      );
      await audit.close();
    });

    test('a write that committed but lost its answer is not written twice', async () => {
      let first = true;
      const p: Probe = {
        statements: 0,
        fail: () => {
          if (!first) return undefined;
          first = false;
          return 'after';
        },
      };
      const audit = new AuditLog(new AuditStore(probe(database.db, p)), {
        retryBaseMs: 10,
        logger: capture(),
      });
      for (let i = 0; i < 30; i++) audit.record({ action: 'exchange', outcome: 'success', userId: USER });
      await audit.flush();
      for (let i = 0; i < 5; i++) audit.record({ action: 'exchange', outcome: 'success', userId: USER });
      await audit.flush();
      assert.equal((await stored()).length, 35);
      assert.equal(await genericRows(), 0);
      await audit.close();
    });

    test('a poison event is isolated and logged; the others are written', async () => {
      const p: Probe = { statements: 0 };
      const poisoned = probe(database.db, p);
      const query = poisoned.query.bind(poisoned);
      poisoned.query = async <T>(sql: string, params?: readonly unknown[]) => {
        if (JSON.stringify(params ?? []).includes('poison')) {
          throw Object.assign(new Error('invalid input syntax'), { code: '22P02' });
        }
        return query<T>(sql, params);
      };
      const logger = capture();
      const audit = new AuditLog(new AuditStore(poisoned), { logger });
      audit.record({ action: 'login', outcome: 'success', userId: USER });
      audit.record({ action: 'login', outcome: 'minor-failure', reason: 'poison' });
      audit.record({ action: 'login', outcome: 'success', userId: USER });
      await audit.flush();
      assert.equal((await stored()).length, 2);
      assert.equal(audit.stats().rejected, 1);
      const line = logger.lines.find((l) => 'auditEvent' in l.obj);
      assert.ok(line, 'the refused event is in the log');
      await audit.close();
    });

    test('memory is bounded: beyond maxPending events are counted and logged loudly', async () => {
      let down = true;
      const p: Probe = { statements: 0, fail: () => (down ? 'before' : undefined) };
      const logger = capture();
      const audit = new AuditLog(new AuditStore(probe(database.db, p)), {
        maxPending: 10,
        retryBaseMs: 10,
        retryMaxMs: 20,
        flushTimeoutMs: 100,
        logger,
      });
      for (let i = 0; i < 15; i++) audit.record({ action: 'token', outcome: 'success', clientId: CLIENT });
      assert.equal(audit.stats().pending, 10);
      assert.equal(audit.stats().overflowed, 5);
      assert.ok(logger.lines.some((l) => l.msg.startsWith('AUDIT OVERFLOW')));
      await assert.rejects(audit.flush(), /audit flush timed out: 10 events/);
      down = false;
      await audit.flush();
      assert.equal((await stored()).length, 10);
      await audit.close();
    });

    test('close() while the database is down logs every unwritten event in full', async () => {
      const p: Probe = { statements: 0, fail: () => 'before' };
      const logger = capture();
      const audit = new AuditLog(new AuditStore(probe(database.db, p)), {
        retryBaseMs: 10,
        flushTimeoutMs: 100,
        logger,
      });
      for (let i = 0; i < 3; i++) audit.record({ action: 'logout', outcome: 'success', userId: USER });
      await audit.close();
      assert.equal(logger.lines.filter((l) => 'auditEvent' in l.obj).length, 3);
      assert.equal(audit.stats().pending, 0);
      audit.record({ action: 'logout', outcome: 'success', userId: USER });
      assert.equal(logger.lines.filter((l) => 'auditEvent' in l.obj).length, 4, 'after close: logged');
      assert.equal((await stored()).length, 0);
    });
  });
}

/** An AuditEvent exactly as fedhir stored it in `resource` before migration 004. */
function legacyEvent(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
  return {
    resourceType: 'AuditEvent',
    id,
    meta: {
      versionId: '77777777-7777-4777-8777-777777777777',
      lastUpdated: '2025-03-04T05:06:07.900Z',
      project: PROJECT,
    },
    type: { system: DCM, code: '110114', display: 'User Authentication' },
    subtype: [
      { system: 'urn:fedhir:audit-action', code: 'token', display: 'token' },
      { system: DCM, code: '110122', display: 'Login' },
    ],
    action: 'E',
    recorded: '2025-03-04T05:06:07.890Z',
    outcome: '4',
    outcomeDesc: 'invalid code',
    agent: [
      { who: { reference: `User/${USER}` }, requestor: true, network: { address: '192.0.2.7', type: '2' } },
      { who: { reference: `ClientApplication/${CLIENT}` }, requestor: false },
    ],
    source: {
      observer: { display: 'fedhir' },
      type: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
          code: '4',
          display: 'Application Server',
        },
      ],
    },
    entity: [{ what: { reference: `Login/${LOGIN}` } }],
    ...overrides,
  };
}

for (const engine of ENGINES) {
  describe(`migration 004 on ${engine}: AuditEvents move to their own table`, () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase(engine);
    });
    after(() => database.drop());

    test('events stored as generic resources are moved and read back the same', async () => {
      await migrate(
        database.db,
        MIGRATIONS.filter((m) => m.version < 4),
      );
      const full = legacyEvent('88888888-8888-4888-8888-888888888881');
      const clientOnly = legacyEvent('88888888-8888-4888-8888-888888888882', {
        meta: { versionId: '77777777-7777-4777-8777-777777777778', lastUpdated: '2025-03-04T05:06:08.000Z' },
        subtype: [{ system: 'urn:fedhir:audit-action', code: 'introspect', display: 'introspect' }],
        type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110112', display: 'Query' },
        outcome: '0',
        outcomeDesc: undefined,
        agent: [{ who: { reference: `ClientApplication/${CLIENT}` }, requestor: true }],
        entity: undefined,
        recorded: '2025-03-04T05:06:07.999Z',
      });
      for (const event of [full, clientOnly]) {
        const meta = event.meta as { versionId: string; lastUpdated: string; project?: string };
        await database.db.query(
          `INSERT INTO resource (id, resource_type, project_id, version_id, last_updated, content)
           VALUES ($1, 'AuditEvent', $2, $3, $4, $5::jsonb)`,
          [event.id, meta.project ?? null, meta.versionId, meta.lastUpdated, JSON.stringify(event)],
        );
      }
      assert.deepEqual(await migrate(database.db), [4]);

      const left = await database.db.query<{ n: string | number }>(
        `SELECT count(*) AS n FROM resource WHERE resource_type = 'AuditEvent'`,
      );
      assert.equal(Number(left[0]?.n), 0, 'no AuditEvent is left among the generic resources');
      const repo = new ResourceRepository(database.db);
      for (const before of [full, clientOnly]) {
        const after = await repo.read<AuditEvent>('AuditEvent', before.id as string);
        assert.ok(after, `${before.id} was moved`);
        // Everything but the version: an AuditEvent now has one version, named by its id.
        const { meta, ...rest } = JSON.parse(JSON.stringify(before)) as { meta: { project?: string } };
        const { meta: newMeta, ...newRest } = after;
        assert.deepEqual(newRest, rest);
        assert.deepEqual(newMeta, {
          versionId: before.id,
          lastUpdated: before.recorded,
          ...(meta.project ? { project: meta.project } : {}),
        });
      }
    });
  });
}
