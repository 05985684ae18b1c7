/**
 * Property-based fuzzing (fast-check) of the OAuth endpoints (RB-01 … RB-06, RB-14): whatever a
 * caller sends to POST /oauth2/token (random, repeated and structured form parameters, random grant
 * types, tokens and credentials, random raw bodies and content types) or to /oauth2/authorize
 * (random query strings and forms), the answer is never a 500, never a stack trace or file path,
 * never a hang (every request is bounded by AbortSignal.timeout); token-endpoint errors are
 * `{error, error_description}` with `Cache-Control: no-store`; and /oauth2/authorize never redirects
 * anywhere but a registered redirect URI or this server (no open redirect).
 *
 * A failure prints the seed and path: rerun with `FC_SEED=<seed> FC_PATH=<path>` to replay it.
 * Runs on PGlite always and on PostgreSQL with TEST_DATABASE_URL (NUL bytes and odd Unicode reach
 * PostgreSQL's text type only there).
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
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from '../support/exchange-fedhir.ts';
import { basic, type ProjectFixture } from '../support/fixtures.ts';
import { passwordCode, passwordTokens, pkcePair } from '../support/oauth-flows.ts';
import type { TestServer } from '../support/server.ts';

const RUNS = 250;
const TIMEOUT_MS = 5000;
const REDIRECT_URI = 'https://app.example.com/callback';

const GRANTS = [
  'authorization_code',
  'refresh_token',
  'client_credentials',
  TOKEN_EXCHANGE,
  'password',
  'implicit',
  'urn:ietf:params:oauth:grant-type:jwt-bearer',
];
const TOKEN_TYPES = [
  ACCESS_TOKEN_TYPE,
  'urn:ietf:params:oauth:token-type:id_token',
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:refresh_token',
];

/** Strings that have broken parsers before: empty, NUL, bad escapes, huge, JSON, HTML, paths. */
const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '%00',
  '%ZZ',
  '%C0%AF',
  '\r\nX-Injected: 1',
  '<script>alert(1)</script>',
  '"\'`',
  '../../etc/passwd',
  '{"a":1}',
  '[]',
  'null',
  'true',
  '-1',
  '1e309',
  'NaN',
  '__proto__',
  'constructor',
  'x'.repeat(600),
  'y'.repeat(70_000),
  'é\u0301',
  '\ud83d\ude00',
  'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
  'a.b.c.d',
);

const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.string() },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 2, arbitrary: nasty },
  { weight: 1, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 64 }) },
);

/** A parameter name: usually a real one, sometimes repeated-style or structured (RB-04), sometimes random. */
function paramName(names: string[]) {
  const real = fc.constantFrom(...names);
  return fc.oneof(
    { weight: 6, arbitrary: real },
    { weight: 1, arbitrary: real.map((n) => `${n}[]`) },
    { weight: 1, arbitrary: fc.tuple(real, fc.string({ maxLength: 8 })).map(([n, k]) => `${n}[${k}]`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('__proto__[admin]', 'constructor[prototype][x]', '__proto__', 'toString'),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
}

/** A form as an ordered list of pairs, so that names can repeat (RFC 6749 §3.1: they must not). */
function formPairs(names: string[], value: fc.Arbitrary<string>) {
  return fc.array(fc.tuple(paramName(names), value), { maxLength: 12 });
}

function encode(pairs: [string, string][]): string {
  const params = new URLSearchParams();
  for (const [k, v] of pairs) params.append(k, v);
  return params.toString();
}

type Pairs = [string, string][];

/**
 * A valid request, mutated: a few parameters replaced by random values, dropped, repeated, or joined
 * by random or structured ones. Inputs built this way pass the first checks and reach the deeper ones.
 */
function mutated(template: Pairs, names: string[], value: fc.Arbitrary<string>): fc.Arbitrary<Pairs> {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...names), value }),
    fc.record({
      kind: fc.constant('drop' as const),
      name: fc.constantFrom(...names),
      value: fc.constant(''),
    }),
    fc.record({ kind: fc.constant('repeat' as const), name: fc.constantFrom(...names), value }),
    fc.record({ kind: fc.constant('add' as const), name: paramName(names), value }),
  );
  return fc.array(mutation, { maxLength: 3 }).map((mutations) => {
    let pairs: Pairs = template.map(([k, v]) => [k, v]);
    for (const m of mutations) {
      if (m.kind === 'set') pairs = pairs.map(([k, v]) => [k, k === m.name ? m.value : v]);
      else if (m.kind === 'drop') pairs = pairs.filter(([k]) => k !== m.name);
      else pairs.push([m.name, m.value]);
    }
    return pairs;
  });
}

const CONTENT_TYPES = fc.constantFrom(
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/json',
  'application/fhir+json',
  'multipart/form-data; boundary=x',
  'text/plain',
  'application/xml',
  '',
);

/** The checks every OAuth (JSON) answer passes. */
function checkOAuthAnswer(r: HttpResult, context: string): void {
  assert.ok(r.status < 500, `${context} → ${r.status} ${r.text.slice(0, 300)}`);
  assertCleanBody(r.text, context);
  if (r.status >= 400 && r.status !== 413 && r.status !== 431) {
    assert.equal(typeof r.body?.error, 'string', `${context}: ${r.status} ${r.text.slice(0, 300)}`);
    assert.equal(typeof r.body?.error_description, 'string', `${context}: ${r.text.slice(0, 300)}`);
  }
}

/** Counts answers by status and OAuth error, to show (and check) how deep the inputs reached. */
function tally() {
  const seen = new Map<string, number>();
  return {
    add(r: HttpResult) {
      const key = `${r.status}${typeof r.body?.error === 'string' ? ` ${r.body.error}` : ''}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    },
    keys: () => [...seen.keys()],
    toString: () => JSON.stringify(Object.fromEntries([...seen].sort((a, b) => b[1] - a[1]))),
  };
}

for (const engine of ENGINES) {
  describe(`fuzzing the OAuth endpoints on ${engine}`, () => {
    let server: TestServer;
    let fx: ProjectFixture;
    let stub: RefusingIdp;
    let exchangeClientId: string;
    /** Real values the fuzzer mixes in, so that inputs also reach the deeper branches. */
    const real: Record<string, string[]> = {};

    before(async () => {
      ({
        server,
        fx,
        idp: stub,
        idpClientId: exchangeClientId,
      } = await startFuzzTarget(engine, REDIRECT_URI, 'fuzz exchange'));
      const tokens = await passwordTokens(server, fx);
      const codes = await Promise.all(Array.from({ length: 5 }, () => passwordCode(server, fx)));
      real.client_id = [fx.client.id, exchangeClientId];
      real.client_secret = [fx.client.secret];
      real.code = codes.map((c) => c.code);
      real.code_verifier = codes.map((c) => c.pkce?.verifier ?? '').concat(pkcePair().verifier);
      real.refresh_token = [tokens.refresh_token as string];
      real.subject_token = [tokens.access_token, tokens.id_token as string, 'stub-token'];
      real.redirect_uri = [REDIRECT_URI];
    });
    after(async () => {
      await server?.close();
      await stub?.close();
    });

    const TOKEN_PARAMS = [
      'grant_type',
      'code',
      'code_verifier',
      'redirect_uri',
      'client_id',
      'client_secret',
      'client_assertion',
      'client_assertion_type',
      'refresh_token',
      'scope',
      'subject_token',
      'subject_token_type',
      'actor_token',
      'actor_token_type',
      'requested_token_type',
      'audience',
      'resource',
      'membership_id',
      'nonce',
      'access_token',
    ];

    function tokenValue() {
      const fromReal = fc.constantFrom(...TOKEN_PARAMS).chain((name) => {
        const values = [...(real[name] ?? []), ...(name === 'grant_type' ? GRANTS : [])];
        const typed = name.endsWith('token_type') ? TOKEN_TYPES : [];
        const pool = [...values, ...typed];
        return pool.length ? fc.constantFrom(...pool) : anyString;
      });
      return fc.oneof({ weight: 2, arbitrary: fromReal }, { weight: 3, arbitrary: anyString });
    }

    test('POST /oauth2/token with random, repeated and structured form parameters', async (t) => {
      const auth = fc.option(
        fc.oneof(
          fc.constant(basic(fx.client.id, fx.client.secret)),
          fc.tuple(anyString, anyString).map(([u, p]) => basic(u, p)),
          fc.string().map((s) => `Basic ${s}`),
          fc.string().map((s) => `Bearer ${s}`),
          anyString,
        ),
        { nil: undefined },
      );
      const seen = tally();
      const templates: Pairs[] = [
        [
          ['grant_type', 'authorization_code'],
          ['code', real.code?.[0] ?? ''],
          ['code_verifier', real.code_verifier?.[0] ?? ''],
          ['client_id', fx.client.id],
          ['redirect_uri', REDIRECT_URI],
        ],
        [
          ['grant_type', 'refresh_token'],
          ['refresh_token', real.refresh_token?.[0] ?? ''],
          ['client_id', fx.client.id],
          ['scope', 'openid'],
        ],
        [
          ['grant_type', 'client_credentials'],
          ['client_id', fx.client.id],
          ['client_secret', fx.client.secret],
          ['scope', 'openid'],
        ],
        [
          ['grant_type', TOKEN_EXCHANGE],
          ['client_id', exchangeClientId],
          ['subject_token', 'stub-token'],
          ['subject_token_type', ACCESS_TOKEN_TYPE],
        ],
      ];
      const forms = fc.oneof(
        {
          weight: 3,
          arbitrary: fc.constantFrom(...templates).chain((tp) => mutated(tp, TOKEN_PARAMS, tokenValue())),
        },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.constantFrom(...GRANTS, 'x'), formPairs(TOKEN_PARAMS, tokenValue()))
            .map(([grant, pairs]): Pairs => [['grant_type', grant], ...pairs]),
        },
      );
      await checkProperty(
        'token form',
        fc.asyncProperty(forms, auth, async (pairs, authorization) => {
          const body = encode(pairs);
          // Header values are bytes: keep what an HTTP client can send (printable ASCII).
          const header = authorization?.replace(/[^\x20-\x7e]/g, '');
          const r = await http(server, 'POST', '/oauth2/token', {
            raw: body,
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              ...(header !== undefined ? { authorization: header } : {}),
            },
            timeoutMs: TIMEOUT_MS,
          });
          seen.add(r);
          checkOAuthAnswer(r, `token ${body.slice(0, 200)}`);
          // 431 (a header block over 16 KB) is Node's answer before any route runs (RB-03).
          if (r.status !== 431) {
            assert.equal(
              r.headers.get('cache-control'),
              'no-store',
              `${r.status} no-store: ${body.slice(0, 200)}`,
            );
          }
          if (r.status === 200) assert.equal(typeof r.body.access_token, 'string');
        }),
        RUNS,
        t.diagnostic.bind(t),
      );
      t.diagnostic(`answers: ${seen}`);
      // The inputs reached past the first check: several grants' own errors were answered.
      for (const error of ['invalid_request', 'invalid_grant', 'invalid_client', 'unsupported_grant_type']) {
        assert.ok(
          seen.keys().some((k) => k.endsWith(error)),
          `no ${error} among ${seen}`,
        );
      }
    });

    test('POST /oauth2/token with random raw bodies and content types', async (t) => {
      const bodies = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
        fc.json(),
        formPairs(TOKEN_PARAMS, tokenValue()).map((pairs) => `${encode(pairs)}&%ZZ`),
        fc.constantFrom('grant_type=', '=', '&&&', 'a=1&a=2&a=3', '%', 'grant_type=%E0%A4%A', '\u0000'),
      );
      const seen = tally();
      await checkProperty(
        'token raw body',
        fc.asyncProperty(bodies, CONTENT_TYPES, async (body, type) => {
          const r = await http(server, 'POST', '/oauth2/token', {
            raw: body,
            headers: type ? { 'content-type': type } : {},
            timeoutMs: TIMEOUT_MS,
          });
          seen.add(r);
          checkOAuthAnswer(r, `token [${type}] ${JSON.stringify(body).slice(0, 200)}`);
          assert.notEqual(r.status, 200, 'a random body never yields tokens');
        }),
        RUNS,
        t.diagnostic.bind(t),
      );
      t.diagnostic(`answers: ${seen}`);
    });

    const AUTHORIZE_PARAMS = [
      'response_type',
      'client_id',
      'redirect_uri',
      'scope',
      'state',
      'nonce',
      'code_challenge',
      'code_challenge_method',
      'prompt',
      'response_mode',
      'login_hint',
      'max_age',
      'idp',
      'request',
      'request_uri',
      'launch',
      'aud',
    ];

    function authorizeValue() {
      const pool = fc.constantFrom(
        'code',
        'token',
        'id_token',
        'S256',
        'plain',
        fx.client.id,
        REDIRECT_URI,
        `${REDIRECT_URI}/extra`,
        'https://evil.example/cb',
        '//evil.example',
        'javascript:alert(1)',
        pkcePair().challenge,
        'openid offline_access',
        'none',
        'login',
        'form_post',
      );
      return fc.oneof({ weight: 2, arbitrary: pool }, { weight: 3, arbitrary: anyString });
    }

    /** A redirect may only lead to the registered redirect URI or stay on this server. */
    function checkLocation(r: HttpResult, context: string): void {
      if (r.status < 300 || r.status >= 400) return;
      const location = r.headers.get('location') ?? '';
      const target = new URL(location, server.baseUrl);
      const allowed =
        target.origin === new URL(server.baseUrl).origin ||
        target.href === REDIRECT_URI ||
        target.href.startsWith(`${REDIRECT_URI}?`) ||
        target.origin === stub.url;
      assert.ok(allowed, `${context}: redirected to ${location}`);
    }

    test('GET and POST /oauth2/authorize, GET /auth/external/start with random parameters: no 500, no stack, no open redirect', async (t) => {
      const template = (clientId: string): Pairs => [
        ['response_type', 'code'],
        ['client_id', clientId],
        ['redirect_uri', REDIRECT_URI],
        ['scope', 'openid offline_access'],
        ['state', 'app-state'],
        ['nonce', 'app-nonce'],
        ['code_challenge', pkcePair().challenge],
        ['code_challenge_method', 'S256'],
      ];
      const query = fc.oneof(
        {
          weight: 4,
          arbitrary: fc
            .constantFrom(template(fx.client.id), template(exchangeClientId))
            .chain((tp) => mutated(tp, AUTHORIZE_PARAMS, authorizeValue()))
            .map(encode),
        },
        { weight: 2, arbitrary: formPairs(AUTHORIZE_PARAMS, authorizeValue()).map(encode) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
        {
          weight: 1,
          arbitrary: fc.constantFrom('%', '%ZZ', 'state=%00', 'a=%C0%AF', 'client_id[]=1&client_id[]=2'),
        },
      );
      const endpoint = fc.constantFrom(
        'GET /oauth2/authorize',
        'POST /oauth2/authorize',
        'GET /auth/external/start',
      );
      const seen = tally();
      await checkProperty(
        'authorize',
        fc.asyncProperty(query, endpoint, async (q, where) => {
          const [method, path] = where.split(' ') as [string, string];
          const r =
            method === 'POST'
              ? await http(server, 'POST', path, {
                  raw: q,
                  headers: { 'content-type': 'application/x-www-form-urlencoded' },
                  timeoutMs: TIMEOUT_MS,
                })
              : await http(server, 'GET', `${path}?${q.replace(/#/g, '%23')}`, { timeoutMs: TIMEOUT_MS });
          seen.add(r);
          const context = `${where} ${q.slice(0, 200)}`;
          assert.ok(r.status < 500, `${context} → ${r.status} ${r.text.slice(0, 300)}`);
          assertCleanBody(r.text, context);
          checkLocation(r, context);
        }),
        RUNS,
        t.diagnostic.bind(t),
      );
      t.diagnostic(`answers: ${seen}`);
      // The inputs reached the sign-in page and the error redirects, not only the first refusal.
      for (const status of ['200', '302', '400']) {
        assert.ok(
          seen.keys().some((k) => k.startsWith(status)),
          `no ${status} among ${seen}`,
        );
      }
    });
  });
}
