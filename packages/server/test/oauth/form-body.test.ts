/**
 * The strict form parser of the OAuth endpoints (RB-02, RB-03) as a plain function: its fast path
 * (no `%` in the body) must refuse and accept exactly what the full check does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequest } from '../../src/oauth/errors.ts';
import { parseStrictForm } from '../../src/oauth/form-body.ts';

const fields = (n: number) => Array.from({ length: n }, (_, i) => `p${i}=v`).join('&');

describe('parseStrictForm', () => {
  test('100 parameters are read, 101 are refused; empty pieces count as parameters', () => {
    assert.equal(Object.keys(parseStrictForm(fields(100))).length, 100);
    assert.throws(() => parseStrictForm(fields(101)), InvalidRequest);
    assert.throws(() => parseStrictForm('&'.repeat(100)), InvalidRequest);
    assert.deepEqual(Object.keys(parseStrictForm('&'.repeat(99))), []);
  });

  test('escapes are checked only where there are some, and then fully', () => {
    assert.deepEqual(
      { ...parseStrictForm('scope=openid+profile&grant_type=client_credentials') },
      {
        scope: 'openid profile',
        grant_type: 'client_credentials',
      },
    );
    assert.deepEqual(
      { ...parseStrictForm('redirect_uri=https%3A%2F%2Fapp%2F%C3%A9') },
      {
        redirect_uri: 'https://app/é',
      },
    );
    for (const bad of ['code=%ZZ', 'code=%C0%AF', 'code=%ED%A0%80', 'code=abc%', 'code=%4']) {
      assert.throws(() => parseStrictForm(bad), InvalidRequest, bad);
    }
  });

  test('a repeated name becomes an array (for parseOAuthParams to refuse)', () => {
    assert.deepEqual(parseStrictForm('code=a&code=b').code, ['a', 'b']);
  });
});
