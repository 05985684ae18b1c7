/**
 * kill -9 under load (RB-14; architecture.md "Runtime modes"): a server process killed without
 * warning while it writes loses nothing it had answered and shows nothing half-written after a
 * restart. Every authorization code, refresh token and sign-in committed before the kill is still
 * valid; every resource and invitation whose creation was answered exists; and the database holds no
 * torn state — each resource has its history row, each invited user its membership and profile,
 * each membership its user and profile (the multi-statement writes are all-or-nothing).
 *
 * Runs on the embedded engine (DATA_DIR, PGlite) always and on PostgreSQL (DATABASE_URL, a throwaway
 * database) when TEST_DATABASE_URL is set. Only the fedhir process is killed, never a database server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createPgliteDb } from '../../src/storage/pglite/index.ts';
import {
  type Cluster,
  type ClusterNode,
  expectStatus,
  http,
  httpProjectFixture,
  loginCode,
  redeemCode,
  refreshGrant,
  signIn,
  startCluster,
  superAdminToken,
  type TokenSet,
} from '../support/cluster.ts';
import { createThrowawayPostgres, ENGINES } from '../support/db.ts';
import type { ProjectFixture } from '../support/fixtures.ts';
import { NO_FAILURE_LIMITS } from '../support/oauth-flows.ts';

/** Queries that must all answer no rows in a consistent database. */
const TORN_STATE: Record<string, string> = {
  // AuditEvents are append-only and written without history rows (their one version is the row).
  'resources without their history row': `
    SELECT r.resource_type, r.id FROM resource r
    LEFT JOIN resource_history h ON h.version_id = r.version_id AND h.id = r.id
    WHERE r.resource_type <> 'AuditEvent' AND (h.version_id IS NULL OR h.content <> r.content)`,
  'resources whose content disagrees with their columns': `
    SELECT resource_type, id FROM resource
    WHERE content->>'id' <> id::text OR content->'meta'->>'versionId' <> version_id::text
       OR content->>'resourceType' <> resource_type`,
  'users without a membership': `
    SELECT u.id FROM resource u
    WHERE u.resource_type = 'User' AND NOT u.deleted AND NOT EXISTS (
      SELECT 1 FROM resource m WHERE m.resource_type = 'ProjectMembership' AND NOT m.deleted
        AND m.content->'user'->>'reference' = 'User/' || u.id::text)`,
  'memberships whose user or profile is missing': `
    SELECT m.id FROM resource m
    WHERE m.resource_type = 'ProjectMembership' AND NOT m.deleted AND (
      NOT EXISTS (SELECT 1 FROM resource x WHERE NOT x.deleted
        AND x.resource_type || '/' || x.id::text = m.content->'user'->>'reference')
      OR NOT EXISTS (SELECT 1 FROM resource x WHERE NOT x.deleted
        AND x.resource_type || '/' || x.id::text = m.content->'profile'->>'reference'))`,
  'codes without an expiry': `SELECT id FROM login WHERE code_digest IS NOT NULL AND code_expires_at IS NULL`,
  'rotated refresh tokens of a live login without a successor in their family': `
    SELECT r.digest FROM refresh_token r JOIN login l ON l.id = r.login_id
    WHERE r.rotated_at IS NOT NULL AND l.revoked_at IS NULL AND NOT EXISTS (
      SELECT 1 FROM refresh_token s WHERE s.login_id = r.login_id AND s.created_at >= r.rotated_at)`,
};

for (const engine of ENGINES) {
  describe(`kill -9 under load, restart, nothing lost or torn (${engine})`, () => {
    let database: { url: string; drop: () => Promise<void> } | undefined;
    let cluster: Cluster;
    let node: ClusterNode;
    let fx: ProjectFixture;

    before(async () => {
      database = engine === 'postgres' ? await createThrowawayPostgres() : undefined;
      cluster = await startCluster({
        ...(database ? { databaseUrl: database.url } : {}),
        env: NO_FAILURE_LIMITS,
      });
      node = cluster.nodes[0] as ClusterNode;
      fx = await httpProjectFixture(node, await superAdminToken(node));
    });
    after(async () => {
      await cluster?.close();
      await database?.drop();
    });

    /** Runs the torn-state queries on the stopped (embedded) or running (PostgreSQL) database. */
    async function tornState(): Promise<Record<string, unknown[]>> {
      const found: Record<string, unknown[]> = {};
      if (database) {
        const client = new pg.Client({ connectionString: database.url });
        await client.connect();
        try {
          for (const [name, sql] of Object.entries(TORN_STATE)) found[name] = (await client.query(sql)).rows;
        } finally {
          await client.end();
        }
        return found;
      }
      // PGlite is single-writer: stop the server (gracefully) before opening its files.
      await cluster.kill(0, 'SIGTERM');
      const db = await createPgliteDb(join(node.env.DATA_DIR as string, 'pglite'));
      try {
        for (const [name, sql] of Object.entries(TORN_STATE)) found[name] = await db.query(sql);
      } finally {
        await db.close();
      }
      return found;
    }

    test('every code, refresh token and sign-in committed before the kill is valid after the restart; nothing is torn', async (t) => {
      const user = { email: fx.admin.email, password: fx.admin.password, clientId: fx.client.id };
      // Committed before the load starts.
      const codes = await Promise.all(Array.from({ length: 6 }, () => loginCode(node, user)));
      const sessions = await Promise.all(Array.from({ length: 6 }, () => signIn(node, user)));
      const cc = await http(node, 'POST', '/oauth2/token', {
        form: { grant_type: 'client_credentials', client_id: fx.client.id, client_secret: fx.client.secret },
      });
      expectStatus(cc, 200, 'client credentials');

      // The load the kill interrupts: writes of every kind, each recorded once it was answered.
      const tag = randomBytes(4).toString('hex');
      const acked = {
        patients: [] as { id: string; family: string }[],
        invites: [] as { email: string; password: string }[],
        codes: [] as Awaited<ReturnType<typeof loginCode>>[],
        sessions: [] as TokenSet[],
        refreshed: [] as TokenSet[],
      };
      let running = true;
      let n = 0;
      const chains = await Promise.all(Array.from({ length: 2 }, () => signIn(node, user)));
      const steps: (() => Promise<void>)[] = [
        async () => {
          const family = `Crash-${tag}-${n++}`;
          const r = await http(node, 'POST', '/fhir/R4/Patient', {
            token: fx.admin.token,
            json: { resourceType: 'Patient', name: [{ family }] },
          });
          if (r.status === 201) acked.patients.push({ id: r.body.id, family });
        },
        async () => {
          const invite = { email: `crash.${tag}.${n++}@example.com`, password: `pw-${tag}-${n}-long` };
          const r = await http(node, 'POST', `/admin/projects/${fx.project.id}/invite`, {
            token: fx.admin.token,
            json: { resourceType: 'Practitioner', firstName: 'Crash', lastName: 'Test', ...invite },
          });
          if (r.status === 201) acked.invites.push(invite);
        },
        async () => {
          acked.codes.push(await loginCode(node, user));
        },
        async () => {
          acked.sessions.push(await signIn(node, user));
        },
        async () => {
          const chain = chains[n++ % chains.length] as TokenSet;
          const r = await refreshGrant(node, chain.refresh_token as string);
          if (r.status === 200) {
            chain.refresh_token = r.body.refresh_token;
            acked.refreshed.push(r.body);
          }
        },
      ];
      const loops = Array.from({ length: 5 }, async (_, w) => {
        for (let i = w; running; i++) {
          await (steps[i % steps.length] as () => Promise<void>)().catch(() => {
            // The kill: the connection drops mid-request. Unanswered writes may or may not exist.
          });
        }
      });
      await new Promise((r) => setTimeout(r, 2000));
      await cluster.kill(0, 'SIGKILL');
      running = false;
      await Promise.all(loops);
      assert.ok(
        acked.patients.length > 0 && acked.invites.length > 0,
        'the load had written before the kill',
      );
      assert.ok(
        acked.sessions.length > 0 && acked.refreshed.length > 0,
        'sign-ins and refreshes before the kill',
      );

      t.diagnostic(
        `answered before the kill: ${acked.patients.length} patients, ${acked.invites.length} invites, ` +
          `${acked.codes.length} codes, ${acked.sessions.length} sign-ins, ${acked.refreshed.length} refreshes`,
      );
      await cluster.restart(0);

      // First, while the reuse grace (10 s) of a rotation the kill interrupted may still run: the
      // refresh chains continue. A rotation is one statement: either the old token still works, or
      // it was rotated and answers the successor that was stored with it.
      for (const [i, chain] of chains.entries()) {
        expectStatus(await refreshGrant(node, chain.refresh_token as string), 200, `chain ${i}`);
      }

      // Committed before the load.
      for (const [i, code] of codes.entries()) {
        const r = await redeemCode(node, code, fx.client.id);
        expectStatus(r, 200, `code ${i}`);
        expectStatus(
          await http(node, 'GET', '/auth/me', { token: r.body.access_token }),
          200,
          `code ${i} session`,
        );
      }
      for (const [i, s] of sessions.entries()) {
        expectStatus(await http(node, 'GET', '/auth/me', { token: s.access_token }), 200, `session ${i}`);
        expectStatus(await refreshGrant(node, s.refresh_token as string), 200, `refresh token ${i}`);
      }
      expectStatus(
        await http(node, 'GET', '/auth/me', { token: cc.body.access_token }),
        200,
        'client credentials',
      );
      // Answered during the load.
      for (const p of acked.patients) {
        const r = await http(node, 'GET', `/fhir/R4/Patient/${p.id}`, { token: fx.admin.token });
        expectStatus(r, 200, `patient ${p.family}`);
        assert.equal(r.body.name?.[0]?.family, p.family);
      }
      for (const code of acked.codes)
        expectStatus(await redeemCode(node, code, fx.client.id), 200, 'acked code');
      for (const s of acked.sessions) {
        expectStatus(await http(node, 'GET', '/auth/me', { token: s.access_token }), 200, 'acked sign-in');
      }
      for (const s of acked.refreshed) {
        expectStatus(await http(node, 'GET', '/auth/me', { token: s.access_token }), 200, 'acked refresh');
      }
      for (const invite of acked.invites) {
        const tokens = await signIn(node, { ...invite, clientId: fx.client.id });
        expectStatus(await http(node, 'GET', '/auth/me', { token: tokens.access_token }), 200, invite.email);
      }

      const torn = await tornState();
      for (const [name, rows] of Object.entries(torn)) assert.deepEqual(rows, [], name);
    });
  });
}
