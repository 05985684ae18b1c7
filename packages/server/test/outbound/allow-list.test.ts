/** `ALLOW_PRIVATE_IDP_URLS` parsing and matching (protocol.md §7.6). Pure. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAllowList } from '../../src/federation/outbound/allow-list.ts';

describe('parseAllowList', () => {
  test('an empty list, or one of blanks, is empty and matches nothing', () => {
    for (const entries of [[], ['', '  ']]) {
      const list = parseAllowList(entries);
      assert.equal(list.empty, true);
      assert.equal(list.matchesHost('localhost'), false);
      assert.equal(list.matchesAddress('127.0.0.1'), false);
    }
  });

  test('host names match exactly, case-insensitively, ignoring a port and a trailing dot', () => {
    const list = parseAllowList(['IdP.Corp.Example', 'localhost:8080']);
    assert.equal(list.empty, false);
    assert.equal(list.matchesHost('idp.corp.example'), true);
    assert.equal(list.matchesHost('IDP.CORP.EXAMPLE'), true);
    assert.equal(list.matchesHost('idp.corp.example.'), true);
    assert.equal(list.matchesHost('localhost'), true);
    // No suffix or parent matching: listing a name does not list its neighbours.
    assert.equal(list.matchesHost('evil.idp.corp.example'), false);
    assert.equal(list.matchesHost('corp.example'), false);
    assert.equal(list.matchesHost('idp.corp.example.evil.com'), false);
    // A name entry lists the name, not the addresses it resolves to.
    assert.equal(list.matchesAddress('127.0.0.1'), false);
    assert.equal(list.matchesHost('127.0.0.1'), false);
  });

  test('IPv4 addresses match the address and its IPv4-mapped IPv6 form only', () => {
    const list = parseAllowList(['127.0.0.1']);
    assert.equal(list.matchesAddress('127.0.0.1'), true);
    assert.equal(list.matchesAddress('::ffff:127.0.0.1'), true);
    assert.equal(list.matchesAddress('127.0.0.2'), false);
    assert.equal(list.matchesAddress('::1'), false);
    assert.equal(list.matchesHost('127.0.0.1'), true);
    assert.equal(list.matchesHost('[::ffff:7f00:1]'), true);
    assert.equal(list.matchesHost('127.0.0.2'), false);
    assert.equal(list.matchesAddress('not-an-ip'), false);
  });

  test('IPv4 entries in non-canonical notation and with a port are canonicalised', () => {
    assert.equal(parseAllowList(['2130706433']).matchesAddress('127.0.0.1'), true);
    assert.equal(parseAllowList(['0x7f000001:8080']).matchesAddress('127.0.0.1'), true);
    assert.equal(parseAllowList(['10.0.0.5:443']).matchesAddress('10.0.0.5'), true);
  });

  test('IPv6 addresses, bare or bracketed with a port', () => {
    for (const entry of ['::1', '[::1]', '[::1]:8443', '0:0:0:0:0:0:0:1']) {
      const list = parseAllowList([entry]);
      assert.equal(list.matchesAddress('::1'), true, entry);
      assert.equal(list.matchesHost('[::1]'), true, entry);
      assert.equal(list.matchesAddress('::2'), false, entry);
    }
  });

  test('IPv4 CIDRs', () => {
    const list = parseAllowList(['10.0.0.0/8', '192.168.4.0/24']);
    assert.equal(list.matchesAddress('10.0.0.1'), true);
    assert.equal(list.matchesAddress('10.255.255.255'), true);
    assert.equal(list.matchesAddress('11.0.0.1'), false);
    assert.equal(list.matchesAddress('192.168.4.77'), true);
    assert.equal(list.matchesAddress('192.168.5.1'), false);
    assert.equal(list.matchesHost('10.1.2.3'), true);
  });

  test('IPv6 CIDRs', () => {
    const list = parseAllowList(['fd00::/8', '2001:db8:1::/48']);
    assert.equal(list.matchesAddress('fd12:3456::1'), true);
    assert.equal(list.matchesAddress('fc00::1'), false);
    assert.equal(list.matchesAddress('2001:db8:1:ffff::1'), true);
    assert.equal(list.matchesAddress('2001:db8:2::1'), false);
    assert.equal(list.matchesHost('[fd00::5]'), true);
  });

  test('rejects entries that are not a host name, IP address or CIDR', () => {
    for (const bad of [
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/8/1',
      'foo/8',
      '10.0.0.0/',
      '10.0.0.0/x',
      'https://idp.example.com/path',
      'user@idp.example.com',
      'a b',
      'idp.example.com?x=1',
    ]) {
      assert.throws(() => parseAllowList([bad]), TypeError, bad);
    }
  });
});
