/**
 * The exceptions to the private-address guard, as `ALLOW_PRIVATE_IDP_URLS` lists them: host names,
 * IP addresses and CIDRs (protocol.md §7.6). An administrator uses them for an IdP on their own
 * network, or on loopback in development and tests.
 */
import { BlockList, isIP } from 'node:net';
import { bareAddress } from './bare-address.ts';

/** A parsed allow list; build one with {@link parseAllowList}. */
export interface AllowList {
  /** Whether the list has no entry (the common production case: nothing private is reachable). */
  readonly empty: boolean;
  /**
   * Whether a URL host is listed: a host name matches a name entry exactly (case-insensitive, a
   * trailing dot ignored); an IP literal (brackets allowed) matches an address or CIDR entry.
   */
  matchesHost(host: string): boolean;
  /** Whether an IP address (v4 or v6; IPv4-mapped IPv6 matches IPv4 entries) is listed. */
  matchesAddress(ip: string): boolean;
}

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function addCidr(list: BlockList, entry: string): void {
  const [network = '', prefixText = '', extra] = entry.split('/');
  const address = bareAddress(network);
  const family = isIP(address);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (extra !== undefined || family === 0 || !(prefix <= (family === 4 ? 32 : 128))) {
    throw new TypeError(`allow-list entry "${entry}" is not a valid CIDR`);
  }
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Parses allow-list entries: `idp.corp.example`, `localhost:8080` (the port is ignored), `10.0.0.5`,
 * `[::1]:8443`, `::1`, `10.0.0.0/8`, `fd00::/8`. Entries are trimmed and lower-cased; empty ones are
 * skipped. IPv4 entries in any WHATWG-URL notation are canonicalised (`2130706433` is `127.0.0.1`).
 *
 * @throws TypeError naming the first entry that is not a host name, IP address or CIDR.
 */
export function parseAllowList(entries: readonly string[]): AllowList {
  const names = new Set<string>();
  const addresses = new BlockList();
  let count = 0;
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    count++;
    if (entry.includes('/')) {
      addCidr(addresses, entry);
      continue;
    }
    if (isIP(entry) === 6) {
      addresses.addAddress(entry, 'ipv6');
      continue;
    }
    // WHATWG URL parsing canonicalises IP notations, punycodes IDNs and separates an optional port.
    let url: URL;
    try {
      url = new URL(`http://${entry}/`);
    } catch {
      throw new TypeError(`allow-list entry "${entry}" is not a host name, IP address or CIDR`);
    }
    if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) {
      throw new TypeError(`allow-list entry "${entry}" is not a host name, IP address or CIDR`);
    }
    const host = bareAddress(url.hostname);
    const family = isIP(host);
    if (family === 0) names.add(normaliseName(host));
    else addresses.addAddress(host, family === 4 ? 'ipv4' : 'ipv6');
  }

  const matchesAddress = (ip: string): boolean => {
    const address = bareAddress(ip);
    const family = isIP(address);
    return family !== 0 && addresses.check(address, family === 4 ? 'ipv4' : 'ipv6');
  };
  return {
    empty: count === 0,
    matchesAddress,
    matchesHost: (host) =>
      isIP(bareAddress(host)) !== 0 ? matchesAddress(host) : names.has(normaliseName(host)),
  };
}
