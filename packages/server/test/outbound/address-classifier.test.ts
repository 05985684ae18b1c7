/**
 * The address classifier behind the SSRF guard (protocol.md §7.6; security-cases RP-49, TX-18).
 * Pure: no address in this file is ever connected to.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type AddressClass, classifyAddress } from '../../src/federation/outbound/address-classifier.ts';
import { embeddedIPv4, ipv6Groups } from '../../src/federation/outbound/embedded-ipv4.ts';

const TABLE: Array<[string, AddressClass]> = [
  // IPv4 public
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['172.32.0.1', 'public'],
  ['172.15.255.255', 'public'],
  ['100.128.0.1', 'public'],
  ['100.63.255.255', 'public'],
  ['11.0.0.1', 'public'],
  ['223.255.255.255', 'public'],
  // RFC 1918 and CGNAT
  ['10.0.0.5', 'private'],
  ['10.255.255.255', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'private'],
  ['100.127.255.255', 'private'],
  // loopback, link-local, metadata, unspecified
  ['127.0.0.1', 'loopback'],
  ['127.0.0.2', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.0.1', 'link-local'],
  ['169.254.169.253', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['169.254.170.23', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  // multicast, documentation, benchmarking, reserved, broadcast
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['192.88.99.1', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  // IPv6 public
  ['2606:4700:4700::1111', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['2a00:1450:4001:82b::200e', 'public'],
  // IPv6 special
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fc00::1', 'private'],
  ['fd12:3456:789a::1', 'private'],
  ['fec0::1', 'private'],
  ['64:ff9b:1::a00:1', 'private'],
  ['fd00:ec2::254', 'metadata'],
  ['fd00:ec2::23', 'metadata'],
  ['fd00:ec2::1', 'private'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['2001:db8::1', 'reserved'],
  ['3fff::1', 'reserved'],
  ['2001::1', 'reserved'],
  ['2001:2::1', 'reserved'],
  ['2001:20::1', 'reserved'],
  ['100::1', 'reserved'],
  ['5f00::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['::7f00:1', 'reserved'],
  // IPv4-mapped and SIIT-translated: judged by the IPv4 inside
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::FFFF:7F00:1', 'loopback'],
  ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.5', 'private'],
  ['::ffff:a9fe:a9fe', 'metadata'],
  ['::ffff:0.0.0.0', 'unspecified'],
  ['::ffff:8.8.8.8', 'public'],
  ['::ffff:0:7f00:1', 'loopback'],
  // NAT64 well-known prefix
  ['64:ff9b::10.0.0.1', 'private'],
  ['64:ff9b::a00:1', 'private'],
  ['64:ff9b::7f00:1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['64:ff9b::808:808', 'public'],
  // 6to4
  ['2002:a00:1::', 'private'],
  ['2002:c0a8:101::1', 'private'],
  ['2002:7f00:1::1', 'loopback'],
  ['2002:a9fe:a9fe::', 'metadata'],
  ['2002:808:808::1', 'public'],
];

describe('classifyAddress', () => {
  for (const [address, expected] of TABLE) {
    test(`${address} is ${expected}`, () => {
      assert.equal(classifyAddress(address), expected);
    });
  }

  // Non-canonical IPv4 spellings are not IP addresses to node:net; WHATWG URL parsing canonicalises
  // them exactly as fetch would before connecting (RP-49).
  const URL_HOSTS: Array<[string, AddressClass]> = [
    ['0x7f000001', 'loopback'],
    ['2130706433', 'loopback'],
    ['017700000001', 'loopback'],
    ['0177.0.0.1', 'loopback'],
    ['127.1', 'loopback'],
    ['0x7f.1', 'loopback'],
    ['0', 'unspecified'],
    ['3232235777', 'private'],
    ['0xa9fea9fe', 'metadata'],
    ['0251.0376.0251.0376', 'metadata'],
    ['[::ffff:127.0.0.1]', 'loopback'],
    ['[0:0:0:0:0:ffff:7f00:1]', 'loopback'],
    ['[::ffff:169.254.169.254]', 'metadata'],
    ['[64:ff9b::127.0.0.1]', 'loopback'],
    ['[2002:a00:1::]', 'private'],
  ];
  for (const [host, expected] of URL_HOSTS) {
    test(`URL host ${host} is ${expected}`, () => {
      assert.equal(classifyAddress(new URL(`https://${host}/`).hostname), expected);
    });
  }

  test('rejects what is not an IP address', () => {
    for (const bad of ['', 'localhost', '0x7f000001', '2130706433', '1.2.3', '::ffff:1.2.3.4.5', '[::1']) {
      assert.throws(() => classifyAddress(bad), TypeError, bad);
    }
  });

  test('an IPv4 address and its mapped, NAT64 and 6to4 forms get the same class', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
        const hi = ((a << 8) | b).toString(16);
        const lo = ((c << 8) | d).toString(16);
        const expected = classifyAddress(v4);
        assert.equal(classifyAddress(`::ffff:${v4}`), expected);
        assert.equal(classifyAddress(`::ffff:${hi}:${lo}`), expected);
        assert.equal(classifyAddress(`64:ff9b::${hi}:${lo}`), expected);
        assert.equal(classifyAddress(`2002:${hi}:${lo}::1`), expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('embeddedIPv4 / ipv6Groups', () => {
  test('expands compressed and dotted-quad forms', () => {
    assert.deepEqual(ipv6Groups('::1'), [0, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(ipv6Groups('fe80::'), [0xfe80, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(ipv6Groups('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
    assert.deepEqual(ipv6Groups('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(ipv6Groups('1::8'), [1, 0, 0, 0, 0, 0, 0, 8]);
  });

  test('extracts the IPv4 of mapped, translated, NAT64 and 6to4 addresses only', () => {
    assert.equal(embeddedIPv4('::ffff:7f00:1'), '127.0.0.1');
    assert.equal(embeddedIPv4('::ffff:0:a00:1'), '10.0.0.1');
    assert.equal(embeddedIPv4('64:ff9b::a9fe:a9fe'), '169.254.169.254');
    assert.equal(embeddedIPv4('2002:c0a8:101::'), '192.168.1.1');
    assert.equal(embeddedIPv4('2606:4700::1'), undefined);
    assert.equal(embeddedIPv4('::1'), undefined);
    assert.equal(embeddedIPv4('64:ff9b:1::a00:1'), undefined);
  });
});
