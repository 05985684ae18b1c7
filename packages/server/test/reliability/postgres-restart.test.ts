/**
 * PostgreSQL restarted under load (RB-14; architecture.md "Runtime modes"): while the database is
 * down every request fails cleanly — 503 (`temporarily_unavailable` on OAuth endpoints, an
 * OperationOutcome elsewhere) or an answer from a cache — never a 500, never a stack trace, never a
 * hang, and never an answer that calls valid credentials invalid (a client would throw its session
 * away); once it is back, everything succeeds again without restarting the server, and nothing
 * issued before the outage was lost.
 *
 * The database is a private PostgreSQL cluster (initdb + pg_ctl in a temp dir, on its own port) that
 * this file stops and starts; the machine's shared cluster is never touched. Skipped with the reason
 * when initdb is unavailable or fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertCleanBody,
  type Cluster,
  type ClusterNode,
  eventually,
  expectStatus,
  type HttpResult,
  http,
  httpProjectFixture,
  leaks,
  type PrivatePostgres,
  refreshGrant,
  signIn,
  startCluster,
  startPrivatePostgres,
  superAdminToken,
} from '../support/cluster.ts';
import type { ProjectFixture } from '../support/fixtures.ts';
import { NO_FAILURE_LIMITS } from '../support/oauth-flows.ts';

const privatePg = await startPrivatePostgres();
const skip = 'skip' in privatePg ? `private PostgreSQL unavailable: ${privatePg.skip}` : false;

type Phase = 'before' | 'down' | 'after';

interface Sample {
  phase: Phase;
  op: string;
  status?: number;
  text?: string;
  type?: string;
  error?: string;
}

/** Operations of the load; each needs the database unless a cache answers it. */
type Op = (worker: Worker) => Promise<HttpResult>;

interface Worker {
  refreshToken: string;
}

describe('PostgreSQL restarted under load', { skip }, () => {
  const pgc = privatePg as PrivatePostgres;
  let cluster: Cluster;
  let node: ClusterNode;
  let fx: ProjectFixture;
  let user: { email: string; password: string; clientId: string };

  before(async () => {
    cluster = await startCluster({ databaseUrl: pgc.url, env: NO_FAILURE_LIMITS });
    node = cluster.nodes[0] as ClusterNode;
    fx = await httpProjectFixture(node, await superAdminToken(node));
    user = { email: fx.admin.email, password: fx.admin.password, clientId: fx.client.id };
  });
  after(async () => {
    await cluster?.close();
    await pgc.destroy?.();
  });

  test('down: clean 503s (or cached answers), no 500, no hang, no false "invalid"; back: everything works, nothing lost', async (t) => {
    // Issued before the outage and not touched by the load: must all work afterwards.
    const reserved = await Promise.all(Array.from({ length: 3 }, () => signIn(node, user)));
    const session = await signIn(node, user);

    const ops: Record<string, Op> = {
      healthcheck: () => http(node, 'GET', '/healthcheck'),
      me: () => http(node, 'GET', '/auth/me', { token: session.access_token }),
      clientCredentials: () =>
        http(node, 'POST', '/oauth2/token', {
          form: {
            grant_type: 'client_credentials',
            client_id: fx.client.id,
            client_secret: fx.client.secret,
          },
        }),
      search: () => http(node, 'GET', '/fhir/R4/Patient?_count=1', { token: fx.admin.token }),
      create: () =>
        http(node, 'POST', '/fhir/R4/Patient', {
          token: fx.admin.token,
          json: { resourceType: 'Patient', name: [{ family: 'Load' }] },
        }),
      refresh: async (worker) => {
        const r = await refreshGrant(node, worker.refreshToken);
        if (r.status === 200) worker.refreshToken = r.body.refresh_token;
        return r;
      },
      introspect: () =>
        http(node, 'POST', '/oauth2/introspect', {
          form: { token: session.access_token, client_id: fx.client.id, client_secret: fx.client.secret },
        }),
    };
    const names = Object.keys(ops);
    const workers: Worker[] = await Promise.all(
      Array.from({ length: 8 }, async () => ({
        refreshToken: (await signIn(node, user)).refresh_token as string,
      })),
    );

    let phase: Phase = 'before';
    let running = true;
    const samples: Sample[] = [];
    const loops = workers.map(async (worker, w) => {
      for (let i = w; running; i++) {
        const op = names[i % names.length] as string;
        const at = phase;
        try {
          const r = await (ops[op] as Op)(worker);
          samples.push({
            phase: at === phase ? at : 'down',
            op,
            status: r.status,
            text: r.text,
            type: r.headers.get('content-type') ?? '',
          });
        } catch (err) {
          samples.push({ phase: at, op, error: (err as Error).message });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    });

    await new Promise((r) => setTimeout(r, 1500));
    phase = 'down';
    await pgc.stop();
    await new Promise((r) => setTimeout(r, 3000));
    await pgc.start();
    const recovered = await eventually(
      async () => (await http(node, 'GET', '/healthcheck').catch(() => undefined))?.status === 200,
      30_000,
      200,
    );
    phase = 'after';
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(loops);
    assert.ok(recovered, 'the server reported healthy again after PostgreSQL came back');

    const by = (p: Phase) => samples.filter((s) => s.phase === p);
    const summary = (list: Sample[]) =>
      list
        .map((s) => `${s.op}:${s.status ?? s.error}`)
        .reduce<Record<string, number>>((acc, k) => {
          acc[k] = (acc[k] ?? 0) + 1;
          return acc;
        }, {});

    for (const p of ['before', 'down', 'after'] as const)
      t.diagnostic(`${p}: ${JSON.stringify(summary(by(p)))}`);

    // Never a hang (every request was bounded), never a 500, never a stack.
    assert.deepEqual(
      samples.filter((s) => s.error).map((s) => `${s.phase} ${s.op}: ${s.error}`),
      [],
      'every request was answered',
    );
    for (const s of samples) {
      assert.ok(
        (s.status as number) < 500 || s.status === 503,
        `${s.phase} ${s.op} → ${s.status} ${s.text?.slice(0, 300)}`,
      );
      assert.ok(!leaks(s.text ?? ''), `${s.phase} ${s.op}: leaks ${s.text?.slice(0, 300)}`);
      if (s.status === 503) {
        if (s.op === 'healthcheck') continue;
        const body = JSON.parse(s.text as string);
        if (['clientCredentials', 'refresh', 'introspect'].includes(s.op)) {
          assert.equal(body.error, 'temporarily_unavailable', `${s.op}: ${s.text}`);
        } else {
          assert.equal(body.resourceType, 'OperationOutcome', `${s.op}: ${s.text}`);
        }
      }
    }
    // Before and after the outage everything succeeds.
    for (const p of ['before', 'after'] as const) {
      const bad = by(p).filter((s) => (s.status as number) >= 300);
      assert.deepEqual(summary(bad), {}, `${p} the outage: ${JSON.stringify(summary(by(p)))}`);
    }
    // The outage was real and answered as one: 503s, and no valid credential was called invalid.
    const down = by('down');
    assert.ok(
      down.some((s) => s.op === 'healthcheck' && s.status === 503),
      `/healthcheck said 503 while down: ${JSON.stringify(summary(down))}`,
    );
    assert.ok(
      down.some((s) => s.op !== 'healthcheck' && s.status === 503),
      'requests answered 503 while down',
    );
    assert.deepEqual(
      summary(down.filter((s) => (s.status as number) >= 400 && s.status !== 503)),
      {},
      `only 503 (or a cached 2xx) while down: ${JSON.stringify(summary(down))}`,
    );

    // Nothing issued before the outage was lost; every worker's latest refresh token still works.
    expectStatus(await http(node, 'GET', '/auth/me', { token: session.access_token }), 200, 'session');
    for (const [i, tokens] of reserved.entries()) {
      expectStatus(
        await refreshGrant(node, tokens.refresh_token as string),
        200,
        `reserved refresh token ${i}`,
      );
      expectStatus(await http(node, 'GET', '/auth/me', { token: tokens.access_token }), 200, `reserved ${i}`);
    }
    for (const [i, worker] of workers.entries()) {
      expectStatus(await refreshGrant(node, worker.refreshToken), 200, `worker ${i}'s latest refresh token`);
    }
    const fresh = await signIn(node, user);
    const created = await http(node, 'POST', '/fhir/R4/Patient', {
      token: fresh.access_token,
      json: { resourceType: 'Patient', name: [{ family: 'After' }] },
    });
    expectStatus(created, 201, 'a write after the outage');
    assertCleanBody(created.text, 'write after');
  });
});
