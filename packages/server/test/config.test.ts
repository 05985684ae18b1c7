import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIG_DOC_PATH, renderConfigDoc } from '../scripts/config-doc.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

test('defaults: port 8103, localhost, base URL with trailing slash, embedded storage', () => {
  const config = loadConfig({});
  assert.equal(config.port, 8103);
  assert.equal(config.host, 'localhost');
  assert.equal(config.baseUrl, 'http://localhost:8103/');
  assert.equal(config.dataDir, './data');
  assert.equal(config.databaseUrl, undefined);
  assert.equal(config.trustProxy, false);
  assert.deepEqual(config.allowPrivateIdpUrls, []);
});

test('BASE_URL gets its trailing slash; PORT alone moves the default BASE_URL', () => {
  assert.equal(
    loadConfig({ BASE_URL: 'https://auth.example.com/fedhir' }).baseUrl,
    'https://auth.example.com/fedhir/',
  );
  assert.equal(loadConfig({ PORT: '9000' }).baseUrl, 'http://localhost:9000/');
});

test('every invalid value names its variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: '-1' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ BASE_URL: 'not a url' }, 'BASE_URL'],
    [{ BASE_URL: 'https://x/?q=1' }, 'BASE_URL'],
    [{ DATABASE_URL: 'mysql://x/y', SECRET_KEY: 'k'.repeat(32) }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://x/y' }, 'SECRET_KEY'],
    [{ SECRET_KEY: 'short' }, 'SECRET_KEY'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ ALLOW_PRIVATE_IDP_URLS: 'idp.local, 10.0.0.0/99' }, 'ALLOW_PRIVATE_IDP_URLS'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY'],
    [{ ADMIN_EMAIL: 'nope' }, 'ADMIN_EMAIL'],
    [{ ADMIN_PASSWORD: 'short' }, 'ADMIN_PASSWORD'],
    [{ ACCESS_TOKEN_LIFETIME: '60' }, 'ACCESS_TOKEN_LIFETIME'],
  ];
  for (const [env, variable] of cases) {
    assert.throws(
      () => loadConfig(env),
      (err: unknown) =>
        err instanceof ConfigError && err.variable === variable && err.message.startsWith(`${variable}:`),
      JSON.stringify(env),
    );
  }
});

test('ALLOW_PRIVATE_IDP_URLS accepts hosts, addresses and CIDRs', () => {
  const config = loadConfig({
    ALLOW_PRIVATE_IDP_URLS: 'IdP.internal:8443, 127.0.0.1, 10.0.0.0/8, ::1, fd00::/8',
  });
  assert.deepEqual(config.allowPrivateIdpUrls, [
    'idp.internal:8443',
    '127.0.0.1',
    '10.0.0.0/8',
    '::1',
    'fd00::/8',
  ]);
});

test('docs/configuration.md is generated from the code and up to date (npm run docs:config)', () => {
  assert.equal(readFileSync(CONFIG_DOC_PATH, 'utf8'), renderConfigDoc());
});

test('DATABASE_PREPARED_STATEMENTS: on unless set false; anything else is refused', () => {
  assert.equal(loadConfig({}).databasePreparedStatements, true);
  assert.equal(loadConfig({ DATABASE_PREPARED_STATEMENTS: 'false' }).databasePreparedStatements, false);
  assert.equal(loadConfig({ DATABASE_PREPARED_STATEMENTS: '1' }).databasePreparedStatements, true);
  // The other booleans keep their default (off).
  assert.equal(loadConfig({}).trustProxy, false);
  assert.throws(() => loadConfig({ DATABASE_PREPARED_STATEMENTS: 'maybe' }), /DATABASE_PREPARED_STATEMENTS/);
});
