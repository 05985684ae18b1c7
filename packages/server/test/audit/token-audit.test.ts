/**
 * Every token the token endpoint issues is an AuditEvent naming whom it went to and its Login
 * (protocol.md §1; ASVS 4.0 7.1.3, 7.2.1): authorization_code, refresh (also when a refresh within
 * the reuse grace replays the sealed answer) and client_credentials, on PGlite and (with
 * TEST_DATABASE_URL) PostgreSQL. The audit fields travel with the grant's result (oauth/issue.ts
 * `IssuedTokens`), so these assertions fail if any grant stops carrying them. The token exchange
 * has the same assertion in TX-32 (test/exchange/tx-cases.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import type { AuditEvent } from '../../src/audit/audit-log.ts';
import { ENGINES } from '../support/db.ts';
import { basic, createProjectFixture, type ProjectFixture } from '../support/fixtures.ts';
import { NO_FAILURE_LIMITS, passwordTokens, refresh, setClient, token } from '../support/oauth-flows.ts';
import { call, startServer, type TestServer } from '../support/server.ts';

for (const engine of ENGINES) {
  describe(`token endpoint audit trail on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;

    before(async () => {
      server = await startServer(engine, NO_FAILURE_LIMITS);
      fx = await createProjectFixture(server);
    });
    after(() => server.close());

    /**
     * Successful AuditEvents of `action` whose Login is `loginId`, as the project's admin finds them
     * through the FHIR API (search by subtype and outcome, then a read by id): the rendering of the
     * compact audit rows is what an auditor sees.
     */
    const successes = async (action: string, loginId: string): Promise<AuditEvent[]> => {
      await server.services.audit.flush();
      const found = await call(
        server,
        'GET',
        `/fhir/R4/AuditEvent?subtype=urn:fedhir:audit-action|${action}&outcome=0&_count=1000`,
        { token: fx.admin.token },
      );
      assert.equal(found.status, 200, JSON.stringify(found.body));
      const events = ((found.body.entry ?? []) as { resource: AuditEvent }[])
        .map((e) => e.resource)
        .filter((e) => e.entity?.some((x) => x.what.reference === `Login/${loginId}`));
      for (const event of events) {
        assert.equal(event.meta?.project, fx.project.id, 'only events of the project are found');
        const read = await call(server, 'GET', `/fhir/R4/AuditEvent/${event.id}`, { token: fx.admin.token });
        assert.equal(read.status, 200);
        assert.deepEqual(read.body, event, 'a read answers what the search found');
      }
      return events;
    };

    test('authorization_code and refresh: each names the user, the client and the Login; a replay within the grace too', async () => {
      await setClient(server, fx.client.id, { refreshTokenReuseGrace: 30 });
      const tokens = await passwordTokens(server, fx, { scope: 'openid offline_access' });
      const claims = decodeJwt(tokens.access_token);
      const loginId = String(claims.login_id);

      const [redeemed] = await successes('token', loginId);
      assert.ok(redeemed, 'the code redemption is audited with its Login');
      assert.equal(redeemed.agent[0]?.who?.reference, `User/${claims.sub}`);
      assert.ok(redeemed.agent.some((a) => a.who?.reference === `ClientApplication/${fx.client.id}`));
      assert.equal(redeemed.meta?.project, fx.project.id);

      const rt = String(tokens.refresh_token);
      const first = await refresh(server, rt, { client_id: fx.client.id });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      // Within the grace the same refresh token answers the same response again (protocol.md §5).
      const replay = await refresh(server, rt, { client_id: fx.client.id });
      assert.equal(replay.status, 200, JSON.stringify(replay.body));
      assert.equal(replay.body.refresh_token, first.body.refresh_token, 'the replay is the sealed answer');

      const refreshes = await successes('refresh', loginId);
      assert.equal(refreshes.length, 2, 'the rotation and the replay are both audited with the Login');
      for (const event of refreshes) assert.equal(event.agent[0]?.who?.reference, `User/${claims.sub}`);
    });

    test('client_credentials names the client as the requestor and its Login', async () => {
      const response = await token(
        server,
        { grant_type: 'client_credentials' },
        { authorization: basic(fx.client.id, fx.client.secret) },
      );
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const claims = decodeJwt(String(response.body.access_token));
      const [event] = await successes('client-credentials', String(claims.login_id));
      assert.ok(event, 'the client_credentials token is audited with its Login');
      assert.deepEqual(event.agent[0]?.who, { reference: `ClientApplication/${fx.client.id}` });
      assert.equal(event.agent[0]?.requestor, true);
      assert.equal(claims.sub, fx.client.id);
    });
  });
}
