/**
 * Classifies an IP address by where it leads, so the outbound guard can refuse every target that is
 * not the public Internet (SSRF defence, OWASP ASVS 5.0 1.3.6 and 16.5.1; the class of Keycloak
 * CVE-2020-10770 and Medplum CVE-2026-49120, where an admin-configured URL reached cloud metadata).
 *
 * The ranges come from the IANA special-purpose registries (RFC 6890 and its updates). For IPv6,
 * only global unicast 2000::/3 can be public; every other unassigned block is `reserved`. Addresses
 * that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that IPv4 address, because that is
 * where the packets end up.
 */
import { BlockList, isIP } from 'node:net';
import { bareAddress } from './bare-address.ts';
import { embeddedIPv4 } from './embedded-ipv4.ts';

/** Where an address leads. Only `public` is reachable by default. */
export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link-local'
  | 'metadata'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

type Ranges = Array<[AddressClass, Array<[network: string, prefix: number]>]>;

// Checked in this order; the first match wins, so the narrow metadata entries precede 169.254/16.
const IPV4_RANGES: Ranges = [
  [
    'metadata',
    [
      ['169.254.169.254', 32], // AWS, GCP, Azure, OCI, OpenStack instance metadata
      ['169.254.170.2', 32], // AWS ECS task credentials endpoint
      ['169.254.170.23', 32], // AWS EKS Pod Identity agent
      ['100.100.100.200', 32], // Alibaba Cloud instance metadata
    ],
  ],
  // "This network" (RFC 1122 §3.2.1.3); Linux and macOS connect 0.0.0.0 to the local host.
  ['unspecified', [['0.0.0.0', 8]]],
  ['loopback', [['127.0.0.0', 8]]], // RFC 1122
  ['link-local', [['169.254.0.0', 16]]], // RFC 3927
  [
    'private',
    [
      ['10.0.0.0', 8], // RFC 1918
      ['172.16.0.0', 12], // RFC 1918
      ['192.168.0.0', 16], // RFC 1918
      ['100.64.0.0', 10], // RFC 6598 carrier-grade NAT shared space
    ],
  ],
  ['multicast', [['224.0.0.0', 4]]], // RFC 5771
  [
    'reserved',
    [
      ['192.0.0.0', 24], // RFC 6890 IETF protocol assignments
      ['192.0.2.0', 24], // RFC 5737 TEST-NET-1
      ['198.51.100.0', 24], // RFC 5737 TEST-NET-2
      ['203.0.113.0', 24], // RFC 5737 TEST-NET-3
      ['198.18.0.0', 15], // RFC 2544 benchmarking
      ['192.88.99.0', 24], // RFC 7526 deprecated 6to4 relay anycast
      ['240.0.0.0', 4], // RFC 1112 reserved, includes 255.255.255.255 limited broadcast (RFC 919)
    ],
  ],
];

const IPV6_RANGES: Ranges = [
  [
    'metadata',
    [
      ['fd00:ec2::254', 128], // AWS instance metadata over IPv6
      ['fd00:ec2::23', 128], // AWS EKS Pod Identity agent over IPv6
    ],
  ],
  ['unspecified', [['::', 128]]], // RFC 4291 §2.5.2
  ['loopback', [['::1', 128]]], // RFC 4291 §2.5.3
  ['link-local', [['fe80::', 10]]], // RFC 4291 §2.5.6
  [
    'private',
    [
      ['fc00::', 7], // RFC 4193 unique local
      ['fec0::', 10], // RFC 3879 deprecated site-local, still routed by some stacks
      ['64:ff9b:1::', 48], // RFC 8215 local-use NAT64 prefix
    ],
  ],
  ['multicast', [['ff00::', 8]]], // RFC 4291 §2.7
  [
    'reserved',
    [
      ['::', 96], // RFC 4291 §2.5.5.1 deprecated IPv4-compatible
      ['100::', 64], // RFC 6666 discard-only
      ['2001::', 32], // RFC 4380 Teredo (obfuscated IPv4 inside)
      ['2001:2::', 48], // RFC 5180 benchmarking
      ['2001:10::', 28], // RFC 4843 deprecated ORCHID
      ['2001:20::', 28], // RFC 7343 ORCHIDv2
      ['2001:db8::', 32], // RFC 3849 documentation
      ['3fff::', 20], // RFC 9637 documentation
      ['5f00::', 16], // RFC 9602 SRv6 SIDs
    ],
  ],
];

type Table = Array<[AddressClass, BlockList]>;

function buildTable(ranges: Ranges, type: 'ipv4' | 'ipv6'): Table {
  return ranges.map(([cls, subnets]) => {
    const list = new BlockList();
    for (const [network, prefix] of subnets) list.addSubnet(network, prefix, type);
    return [cls, list];
  });
}

// Separate tables per family: net.BlockList matches IPv4-mapped IPv6 addresses against IPv4 rules
// and vice versa, which would blur the IPv6-only rules (e.g. ::/96) into IPv4 checks.
const IPV4_TABLE = buildTable(IPV4_RANGES, 'ipv4');
const IPV6_TABLE = buildTable(IPV6_RANGES, 'ipv6');
const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6'); // RFC 4291 §2.4

/**
 * Classifies an IPv4 or IPv6 address (canonical text; brackets and a zone id are accepted).
 *
 * Non-canonical IPv4 notations (`0x7f000001`, `2130706433`, `017700000001`) are not IP addresses to
 * `node:net`; pass them through WHATWG URL parsing first (`new URL('http://0x7f000001/').hostname` is
 * `127.0.0.1`), as the guard does.
 *
 * @throws TypeError when `ip` is not an IP address.
 * @see https://www.iana.org/assignments/iana-ipv4-special-registry/
 * @see https://www.iana.org/assignments/iana-ipv6-special-registry/
 */
export function classifyAddress(ip: string): AddressClass {
  const address = bareAddress(ip);
  const family = isIP(address);
  if (family === 4) return lookup(IPV4_TABLE, address, 'ipv4') ?? 'public';
  if (family !== 6) throw new TypeError('not an IP address');
  // Mapped, NAT64 and 6to4 addresses lead to their IPv4 address; none overlaps the IPv6 rows below.
  const v4 = embeddedIPv4(address);
  if (v4 !== undefined) return classifyAddress(v4);
  return (
    lookup(IPV6_TABLE, address, 'ipv6') ?? (GLOBAL_UNICAST.check(address, 'ipv6') ? 'public' : 'reserved')
  );
}

function lookup(table: Table, address: string, type: 'ipv4' | 'ipv6'): AddressClass | undefined {
  for (const [cls, list] of table) if (list.check(address, type)) return cls;
  return undefined;
}

export { type AllowList, parseAllowList } from './allow-list.ts';
