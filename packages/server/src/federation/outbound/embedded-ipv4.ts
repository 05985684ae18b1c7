/**
 * Finds the IPv4 address carried inside an IPv6 address by the transition mechanisms an attacker can
 * use to smuggle a private IPv4 target past a check that only looks at the IPv6 ranges:
 * IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), SIIT IPv4-translated (`::ffff:0:a.b.c.d`,
 * RFC 2765), NAT64 well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052 §2.1) and 6to4 (`2002:AABB:CCDD::`,
 * RFC 3056 §2). `node:net` validates the text; this file only splits an already valid address into
 * its 16-bit groups, which `net.BlockList` cannot give us.
 */
import { isIPv6 } from 'node:net';

/** The eight 16-bit groups of a valid IPv6 address (zone id and brackets already removed). */
export function ipv6Groups(address: string): number[] {
  if (!isIPv6(address)) throw new TypeError('not an IPv6 address');
  let text = address.toLowerCase();
  // A trailing dotted quad ("::ffff:127.0.0.1") stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const left = parse(head);
  if (rest === undefined) return left;
  const right = parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function dotted(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * The IPv4 address embedded in `address` by a translation or tunnelling prefix, or `undefined`.
 *
 * @example embeddedIPv4('::ffff:7f00:1') // '127.0.0.1'
 * @example embeddedIPv4('2002:a00:1::') // '10.0.0.1'
 */
export function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = g;
  const zeroThroughG3 = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0;
  // ::ffff:0:0/96 (mapped) and ::ffff:0:0:0/96 (SIIT translated).
  if (zeroThroughG3 && g4 === 0 && g5 === 0xffff) return dotted(g6, g7);
  if (zeroThroughG3 && g4 === 0xffff && g5 === 0) return dotted(g6, g7);
  // 64:ff9b::/96, the NAT64 well-known prefix: a NAT64 gateway forwards to the embedded IPv4.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return dotted(g6, g7);
  // 2002::/16, 6to4: the relay tunnels to the IPv4 address in groups 1 and 2.
  if (g0 === 0x2002) return dotted(g1 ?? 0, g2 ?? 0);
  return undefined;
}
