/**
 * Property-based fuzzing (fast-check) of the Medplum-compatible `/auth/*` routes (RB-04, RB-13, RB-14):
 * random JSON values, near-valid bodies with random field values, and malformed JSON posted to
 * /auth/login, /auth/profile, /auth/method and /auth/exchange, and random `code`, `state` (JSON-ish
 * §3.1 states and opaque §3.2 handles), `iss` and `error` at the /auth/external callback. Whatever
 * arrives, the answer is never a 500, never a stack trace or file path, never a hang (every request
 * is bounded by AbortSignal.timeout); JSON routes answer errors as an OperationOutcome;
 * `Object.prototype` is never polluted; and a forged callback never signs anyone in.
 *
 * A failure prints the seed and path: rerun with `FC_SEED=<seed> FC_PATH=<path>` to replay it.
 * Runs on PGlite always and on PostgreSQL with TEST_DATABASE_URL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  assertCleanBody,
  checkProperty,
  type HttpResult,
  http,
  type RefusingIdp,
  startFuzzTarget,
} from '../support/cluster.ts';
import { ENGINES } from '../support/db.ts';
import type { ProjectFixture } from '../support/fixtures.ts';
import { inviteUser, pkcePair } from '../support/oauth-flows.ts';
import type { TestServer } from '../support/server.ts';

const RUNS = 250;
const TIMEOUT_MS = 5000;
const REDIRECT_URI = 'https://app.example.com/callback';

const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  '<script>alert(1)</script>',
  '"\'`',
  '{"a":1}',
  '__proto__',
  'constructor',
  'x'.repeat(600),
  'y'.repeat(20_000),
  'é\u0301',
  '\ud83d\ude00',
  '\ud800',
  'ALICE@EXAMPLE.COM',
  'a@b',
  '@',
  'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
);

const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.string() },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 2, arbitrary: nasty },
  { weight: 1, arbitrary: fc.uuid() },
);

/** Any JSON value, including the odd ones a schema must refuse. */
const anyValue = fc.oneof(
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, 0, -1, 1e308, [], {}, [''], { '': '' }) },
);

/** JSON that is not: truncated, unbalanced, deep, duplicated keys, prototype keys, other encodings. */
const malformed = fc.oneof(
  fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1))),
  fc.string({ maxLength: 200 }),
  fc.constantFrom(
    '',
    '{',
    '}',
    '{"email":',
    '{"email":"a@b","email":"c@d"}',
    '{"__proto__":{"admin":true},"email":"a@b","password":"x"}',
    '{"constructor":{"prototype":{"admin":true}}}',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    `{"a":${'1'.repeat(400)}}`,
    '\ufeff{"email":"a@b","password":"x"}',
    'null',
    '"string"',
    '[1,2,3]',
    'NaN',
    '{"email":"a@b","password":"x"}garbage',
  ),
);

const CONTENT_TYPES = fc.constantFrom(
  'application/json',
  'application/fhir+json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  '',
);

/**
 * A valid body, mutated: up to three fields replaced by random JSON values, dropped, or joined by
 * random keys. Inputs built this way pass schema validation often and reach the deeper checks.
 */
function mutatedBody(valid: Record<string, unknown>) {
  const keys = Object.keys(valid);
  const mutation = fc.oneof(
    fc.tuple(fc.constant('set' as const), fc.constantFrom(...keys), anyValue),
    fc.tuple(fc.constant('drop' as const), fc.constantFrom(...keys), fc.constant(null)),
    fc.tuple(fc.constant('add' as const), fc.string({ maxLength: 10 }), anyValue),
  );
  return fc.array(mutation, { maxLength: 3 }).map((mutations) => {
    const body: Record<string, unknown> = { ...valid };
    for (const [kind, key, value] of mutations) {
      if (kind === 'drop') delete body[key];
      else Object.defineProperty(body, key, { value, enumerable: true, writable: true, configurable: true });
    }
    return body;
  });
}

/** Counts answers by status, to show (and check) how deep the inputs reached. */
function tally() {
  const seen = new Map<number, number>();
  return {
    add(r: HttpResult) {
      seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
    },
    has: (status: number) => seen.has(status),
    toString: () => JSON.stringify(Object.fromEntries(seen)),
  };
}

function checkJsonAnswer(r: HttpResult, context: string): void {
  assert.ok(r.status < 500, `${context} → ${r.status} ${r.text.slice(0, 300)}`);
  assertCleanBody(r.text, context);
  if (r.status >= 400 && r.status !== 431) {
    assert.equal(
      r.body?.resourceType,
      'OperationOutcome',
      `${context} → ${r.status} ${r.text.slice(0, 300)}`,
    );
    assert.equal(typeof r.body?.issue?.[0]?.details?.text, 'string', `${context}: ${r.text.slice(0, 300)}`);
  }
  // RB-04: nothing a body carried reached Object.prototype (the server runs in this process).
  assert.equal(({} as Record<string, unknown>).admin, undefined, `${context}: Object.prototype polluted`);
}

for (const engine of ENGINES) {
  describe(`fuzzing the /auth routes on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let idp: RefusingIdp;
    let idpClientId: string;
    /** A user with two memberships (a login that waits for /auth/profile), and its memberships. */
    let twoHomes: { email: string; password: string; memberships: string[] };

    before(async () => {
      ({ server, fx, idp, idpClientId } = await startFuzzTarget(engine, REDIRECT_URI, 'fuzz idp'));
      const email = `two.homes.${Date.now()}@example.com`;
      const first = await inviteUser(server, fx, { email });
      const second = await inviteUser(server, fx, { email });
      twoHomes = {
        email,
        password: first.password,
        memberships: [first.membership.id, second.membership.id],
      };
    });
    after(async () => {
      await server?.close();
      await idp?.close();
    });

    async function post(path: string, body: string, type: string): Promise<HttpResult> {
      return http(server, 'POST', path, {
        raw: body,
        headers: type ? { 'content-type': type } : {},
        timeoutMs: TIMEOUT_MS,
      });
    }

    test('POST /auth/login, /auth/profile, /auth/method, /auth/exchange with random JSON and near-valid bodies', async (t) => {
      const challenge = pkcePair().challenge;
      const pending = await http(server, 'POST', '/auth/login', {
        json: { ...twoHomes, memberships: undefined, codeChallenge: challenge, codeChallengeMethod: 'S256' },
      });
      assert.equal(pending.status, 200, pending.text);
      const loginId = pending.body.login as string;
      const bodies: Record<string, fc.Arbitrary<unknown>> = {
        '/auth/login': fc.oneof(
          mutatedBody({
            email: fx.admin.email,
            password: fx.admin.password,
            clientId: fx.client.id,
            scope: 'openid offline_access',
            nonce: 'n',
            codeChallenge: challenge,
            codeChallengeMethod: 'S256',
          }),
          mutatedBody({
            email: twoHomes.email,
            password: twoHomes.password,
            projectId: fx.project.id,
            codeChallenge: challenge,
            codeChallengeMethod: 'S256',
          }),
        ),
        '/auth/profile': mutatedBody({ login: loginId, profile: twoHomes.memberships[1] }),
        '/auth/method': mutatedBody({ email: fx.admin.email, projectId: fx.project.id }),
        '/auth/exchange': mutatedBody({
          externalAccessToken: 'stub-token',
          clientId: idpClientId,
          scope: 'openid',
        }),
      };
      const paths = Object.keys(bodies);
      const request = fc.oneof(
        {
          weight: 4,
          arbitrary: fc.constantFrom(...paths).chain((path) =>
            fc.tuple(
              fc.constant(path),
              (bodies[path] as fc.Arbitrary<unknown>).map((b) => JSON.stringify(b)),
            ),
          ),
        },
        {
          weight: 1,
          arbitrary: fc.tuple(
            fc.constantFrom(...paths),
            fc.jsonValue().map((v) => JSON.stringify(v)),
          ),
        },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...paths), malformed) },
      );
      const seen = tally();
      await checkProperty(
        '/auth JSON',
        fc.asyncProperty(
          request,
          fc.oneof(
            { weight: 4, arbitrary: fc.constant('application/json') },
            { weight: 2, arbitrary: CONTENT_TYPES },
          ),
          async ([path, body], type) => {
            const r = await post(path, body ?? '', type);
            seen.add(r);
            checkJsonAnswer(r, `${path} [${type}] ${String(body).slice(0, 200)}`);
          },
        ),
        RUNS,
        t.diagnostic.bind(t),
      );
      t.diagnostic(`answers: ${seen}`);
      // The inputs reached past schema validation: sign-ins succeeded and were refused on their merits.
      assert.ok(seen.has(200) && seen.has(400), `answers: ${seen}`);
    });

    // Found by this file: an empty projectId once reached the database as '' (22P02 → 500).
    test('POST /auth/login with an empty projectId, for a user with two memberships → 400 or the chooser, never 500', async () => {
      const challenge = pkcePair().challenge;
      const r = await http(server, 'POST', '/auth/login', {
        json: {
          email: twoHomes.email,
          password: twoHomes.password,
          projectId: '',
          codeChallenge: challenge,
          codeChallengeMethod: 'S256',
        },
        timeoutMs: TIMEOUT_MS,
      });
      checkJsonAnswer(r, 'projectId ""');
    });

    test('GET /auth/external with random code, state (JSON-ish and opaque), iss and error: no 500, no stack, no sign-in', async (t) => {
      const challenge = pkcePair().challenge;
      const legacyState = mutatedBody({
        clientId: idpClientId,
        projectId: fx.project.id,
        redirectUri: REDIRECT_URI,
        codeChallenge: challenge,
        codeChallengeMethod: 'S256',
        scope: 'openid',
        nonce: 'n',
      }).map((state) => JSON.stringify(state));
      const state = fc.oneof(
        { weight: 4, arbitrary: legacyState },
        { weight: 1, arbitrary: fc.json() },
        { weight: 1, arbitrary: anyString.map((s) => `{${s}`) },
        { weight: 1, arbitrary: fc.base64String({ minLength: 20, maxLength: 64 }) },
        { weight: 1, arbitrary: anyString },
      );
      /** A parameter: absent `absent` times in `absent + 6`, repeated once in those 6 (RP-09). */
      const param = (name: string, value: fc.Arbitrary<string>, absent: number) =>
        fc.oneof(
          { weight: 5, arbitrary: value.map((v): [string, string][] => [[name, v]]) },
          {
            weight: 1,
            arbitrary: fc.tuple(value, value).map(([a, b]): [string, string][] => [
              [name, a],
              [name, b],
            ]),
          },
          { weight: absent, arbitrary: fc.constant([] as [string, string][]) },
        );
      const query = fc
        .tuple(
          param('code', fc.oneof(fc.constant('upstream-code'), anyString), 1),
          param('state', state, 1),
          param('iss', fc.oneof(fc.constant(idp.url), anyString), 12),
          param('error', anyString, 30),
          param('error_description', anyString, 12),
        )
        .map((parts) => {
          const q = new URLSearchParams();
          for (const [k, v] of parts.flat()) q.append(k, v);
          return q.toString();
        });
      const seen = tally();
      const tokenCalls = idp.calls['/token'] ?? 0;
      await checkProperty(
        '/auth/external',
        fc.asyncProperty(query, async (q) => {
          const r = await http(server, 'GET', `/auth/external?${q}`, { timeoutMs: TIMEOUT_MS });
          seen.add(r);
          const context = `/auth/external?${q.slice(0, 300)}`;
          assert.ok(r.status < 500, `${context} → ${r.status} ${r.text.slice(0, 300)}`);
          assertCleanBody(r.text, context);
          // The provider refuses every code: nothing may be signed in, nothing redirected to an app.
          assert.ok(r.status >= 400, `${context} → ${r.status} ${r.headers.get('location')}`);
          assert.equal(r.headers.get('location'), null, `${context}: redirected`);
        }),
        RUNS,
        t.diagnostic.bind(t),
      );
      t.diagnostic(
        `answers: ${seen}; code redemptions at the provider: ${(idp.calls['/token'] ?? 0) - tokenCalls}`,
      );
      assert.ok((idp.calls['/token'] ?? 0) > tokenCalls, 'some forged callbacks reached the code redemption');
    });
  });
}
