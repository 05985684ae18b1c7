/**
 * Save-time validation of identity-provider URLs (protocol.md §2 "Validation at save"; RP-49,
 * RP-50, TX-18). Pure: nothing is resolved or connected to, so private and metadata addresses are
 * safe to list here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAllowList } from '../../src/federation/outbound/allow-list.ts';
import { validateOutboundUrl } from '../../src/federation/outbound/validate-outbound-url.ts';

function reasonOf(url: string, allow: string[] = []): string | undefined {
  const result = validateOutboundUrl(url, allow);
  return result.ok ? undefined : result.reason;
}

describe('validateOutboundUrl', () => {
  test('accepts public https URLs', () => {
    for (const url of [
      'https://idp.example.com/.well-known/openid-configuration',
      'https://login.microsoftonline.com/common/v2.0',
      'https://tenant.eu.auth0.com/userinfo?x=1',
      'https://idp.example.com:8443/oauth2/token',
      'https://8.8.8.8/',
      'https://[2606:4700:4700::1111]/jwks',
    ]) {
      assert.deepEqual(validateOutboundUrl(url, []), { ok: true }, url);
    }
  });

  test('refuses every RP-49 address, in every notation', () => {
    for (const [url, reason] of [
      ['http://169.254.169.254/latest/meta-data/', 'URL must use https'],
      ['https://169.254.169.254/latest/meta-data/', 'address is metadata'],
      ['https://127.0.0.1:5432/', 'address is loopback'],
      ['https://[::1]/', 'address is loopback'],
      ['https://0x7f000001/', 'address is loopback'],
      ['https://2130706433/', 'address is loopback'],
      ['https://017700000001/', 'address is loopback'],
      ['https://127.1/', 'address is loopback'],
      ['https://[::ffff:127.0.0.1]/', 'address is loopback'],
      ['https://[::ffff:a9fe:a9fe]/', 'address is metadata'],
      ['https://[64:ff9b::10.0.0.5]/', 'address is private'],
      ['https://[2002:a00:5::]/', 'address is private'],
      ['https://10.0.0.5/token', 'address is private'],
      ['https://192.168.0.1/', 'address is private'],
      ['https://100.64.0.1/', 'address is private'],
      ['https://[fd00:ec2::254]/', 'address is metadata'],
      ['https://[fc00::1]/', 'address is private'],
      ['https://[fe80::1]/', 'address is link-local'],
      ['https://0.0.0.0/', 'address is unspecified'],
      ['https://[::]/', 'address is unspecified'],
      ['https://224.0.0.1/', 'address is multicast'],
      ['https://192.0.2.1/', 'address is reserved'],
      ['https://255.255.255.255/', 'address is reserved'],
    ]) {
      assert.equal(reasonOf(url as string), reason, url);
    }
  });

  test('refuses obviously internal host names', () => {
    for (const url of [
      'https://localhost/',
      'https://LOCALHOST./',
      'https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/', // full-width, folded by IDNA
      'https://idp.localhost/',
      'https://metadata.google.internal/computeMetadata/v1/',
      'https://instance-data.ec2.internal/',
      'https://printer.local/',
      'https://router.home.arpa/',
      'https://box.localdomain/',
    ]) {
      assert.equal(reasonOf(url), 'host name is internal', url);
    }
    for (const url of ['https://metadata/', 'https://kubernetes/', 'https://instance-data/']) {
      assert.equal(reasonOf(url), 'host name is not fully qualified', url);
    }
  });

  test('refuses other schemes and non-URLs (RP-50)', () => {
    for (const url of [
      'http://idp.example.com/',
      'file:///etc/passwd',
      'data:application/json,{}',
      'gopher://idp.example.com:70/_x',
      'ftp://idp.example.com/',
      'ws://idp.example.com/',
      'javascript:alert(1)',
    ]) {
      assert.equal(reasonOf(url), 'URL must use https', url);
    }
    for (const url of ['not a url', '/relative/path', '', 'https://']) {
      assert.equal(reasonOf(url), 'not an absolute URL', url);
    }
  });

  test('refuses credentials in the URL', () => {
    assert.equal(reasonOf('https://user:pass@idp.example.com/'), 'URL must not contain credentials');
  });

  test('allow-listed addresses and names pass, also over http', () => {
    assert.deepEqual(validateOutboundUrl('http://127.0.0.1:8080/', ['127.0.0.1']), { ok: true });
    assert.deepEqual(validateOutboundUrl('https://127.0.0.1/', ['127.0.0.1']), { ok: true });
    assert.deepEqual(validateOutboundUrl('https://[::ffff:127.0.0.1]/', ['127.0.0.1']), { ok: true });
    assert.deepEqual(validateOutboundUrl('http://localhost:3000/', ['localhost']), { ok: true });
    assert.deepEqual(validateOutboundUrl('http://idp.corp.internal/', ['idp.corp.internal']), { ok: true });
    assert.deepEqual(validateOutboundUrl('https://10.1.2.3/', ['10.0.0.0/8']), { ok: true });
    assert.deepEqual(validateOutboundUrl('http://[fd00::5]/', ['fd00::/8']), { ok: true });
    // A parsed list works too.
    assert.deepEqual(validateOutboundUrl('http://[::1]:9000/', parseAllowList(['::1'])), { ok: true });
  });

  test('an allow list does not widen beyond its entries', () => {
    assert.equal(reasonOf('http://127.0.0.2/', ['127.0.0.1']), 'URL must use https');
    assert.equal(reasonOf('https://127.0.0.2/', ['127.0.0.1']), 'address is loopback');
    assert.equal(reasonOf('http://localhost/', ['127.0.0.1']), 'URL must use https');
    assert.equal(reasonOf('https://localhost/', ['127.0.0.1']), 'host name is internal');
    assert.equal(reasonOf('https://169.254.169.254/', ['10.0.0.0/8']), 'address is metadata');
    assert.equal(reasonOf('file:///etc/passwd', ['localhost']), 'URL must use https');
  });

  test('reasons never echo the query string', () => {
    const result = validateOutboundUrl('https://127.0.0.1/token?client_secret=s3cr3t', []);
    assert.equal(result.ok, false);
    assert.ok(!JSON.stringify(result).includes('s3cr3t'));
  });
});
