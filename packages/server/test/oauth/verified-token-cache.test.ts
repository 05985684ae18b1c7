/**
 * The verified-access-token cache of TokenService (performance.md: a bearer check must not verify an
 * ES256 signature per request): what it serves, what it refuses, and what it keeps in memory.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { digest } from '../../src/crypto/digest.ts';
import { InvalidToken } from '../../src/oauth/errors.ts';
import type { TokenService } from '../../src/oauth/tokens.ts';
import { withLastCharacterChanged } from '../support/oauth-flows.ts';
import { startServer, type TestServer } from '../support/server.ts';

describe('verified-token cache', () => {
  let server: TestServer;
  let tokens: TokenService;
  /** The cache itself (private): the test checks what it holds. */
  const entries = () => (tokens as unknown as { verified: Map<string, unknown> }).verified;
  const claims = () => ({ sub: randomUUID(), login_id: randomUUID(), scope: 'openid' });

  before(async () => {
    server = await startServer('pglite');
    tokens = server.services.tokens;
  });
  after(() => server.close());

  test('a second check of a token is served from the cache: the same claims, no signature check', async () => {
    const issued = await tokens.signAccessToken(claims(), 60);
    const first = await tokens.verifyAccessToken(issued.token);
    assert.equal(first.sub, issued.claims.sub);
    // With the key store unable to answer, only the cache can verify the token again.
    const keys = (tokens as unknown as { keys: { verificationKey: (kid: string) => Promise<unknown> } }).keys;
    const original = keys.verificationKey;
    keys.verificationKey = async () => {
      throw new Error('the cached token was verified again');
    };
    try {
      assert.equal(await tokens.verifyAccessToken(issued.token), first);
    } finally {
      keys.verificationKey = original;
    }
  });

  test('it is keyed by the SHA-256 of the token and holds no token string', async () => {
    const issued = await tokens.signAccessToken(claims(), 60);
    await tokens.verifyAccessToken(issued.token);
    assert.ok(entries().has(digest(issued.token)));
    for (const key of entries().keys()) {
      assert.equal(key.length, 43, 'a base64url SHA-256');
      assert.ok(!key.includes('.'), 'not a JWT');
    }
  });

  test('a token one character away from a cached one is checked, and refused', async () => {
    const issued = await tokens.signAccessToken(claims(), 60);
    await tokens.verifyAccessToken(issued.token);
    const [header, payload, signature = ''] = issued.token.split('.');
    // A character inside the signature: the last one of a 64-byte signature carries only 2 bits,
    // and some changes to it decode to the same bytes (a valid, merely differently spelt token).
    const changed = withLastCharacterChanged(signature.slice(0, 10)) + signature.slice(10);
    const tampered = `${header}.${payload}.${changed}`;
    await assert.rejects(tokens.verifyAccessToken(tampered), InvalidToken);
    assert.ok(!entries().has(digest(tampered)));
  });

  test('a cached token is refused once it expires, and leaves the cache', async () => {
    // 2 s, not 1: exp counts whole seconds from iat, so a 1-second token signed at x.999 s expired
    // before its first check (a CI run met it); 2 s leaves at least one whole second.
    const issued = await tokens.signAccessToken(claims(), 2);
    await tokens.verifyAccessToken(issued.token);
    // RFC 7519 §4.1.4: not accepted on or after exp (whole seconds).
    await new Promise((resolve) => setTimeout(resolve, issued.claims.exp * 1000 - Date.now() + 50));
    await assert.rejects(tokens.verifyAccessToken(issued.token), InvalidToken);
    assert.ok(!entries().has(digest(issued.token)));
  });

  test('an over-long bearer value is refused before it is hashed or parsed', async () => {
    await assert.rejects(tokens.verifyAccessToken('a'.repeat(8193)), /malformed/);
  });
});
