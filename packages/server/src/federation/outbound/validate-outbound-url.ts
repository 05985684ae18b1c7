/**
 * The pure, no-network half of the outbound guard: what can be decided from the URL text alone.
 * The admin API runs it when an identity provider is saved (protocol.md §2 "Validation at save"),
 * and the guarded fetch runs it again before every call; the resolved addresses are then checked at
 * connect time, which only the connector can do (DNS may change between save and use).
 */
import { isIP } from 'node:net';
import { classifyAddress } from './address-classifier.ts';
import { type AllowList, parseAllowList } from './allow-list.ts';
import { bareAddress } from './bare-address.ts';
import type { OutboundErrorCode } from './outbound-error.ts';

/** The result of {@link validateOutboundUrl}: a reason fit for an administrator when refused. */
export type OutboundUrlCheck = { ok: true } | { ok: false; reason: string };

/** The same, with the stable error code and the parsed URL, for the guarded fetch. */
export type ParsedOutboundUrl =
  | { ok: true; url: URL; host: string; literal: string | undefined }
  | { ok: false; code: OutboundErrorCode; host: string; reason: string };

// Special-use names that never lead to the public Internet: RFC 6761 §6.3 (localhost), RFC 6762
// (.local, mDNS), RFC 8375 (.home.arpa), ICANN 2024 (.internal, which also holds GCP's
// metadata.google.internal and AWS's *.ec2.internal), and the common `localdomain` suffix.
const INTERNAL_SUFFIXES = ['localhost', 'local', 'internal', 'home.arpa', 'localdomain'];

function internalNameReason(name: string): string | undefined {
  const host = name.endsWith('.') ? name.slice(0, -1) : name;
  for (const suffix of INTERNAL_SUFFIXES) {
    if (host === suffix || host.endsWith(`.${suffix}`)) return 'host name is internal';
  }
  // A single label ("metadata", "kubernetes", "instance-data") is completed by the resolver's
  // search domains, i.e. it names something on the local network.
  return host.includes('.') ? undefined : 'host name is not fully qualified';
}

/**
 * Parses and checks an outbound URL without touching the network.
 *
 * @param input - the URL text
 * @param allow - the parsed allow list
 */
export function parseOutboundUrl(input: string | URL, allow: AllowList): ParsedOutboundUrl {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return { ok: false, code: 'blocked_scheme', host: '', reason: 'not an absolute URL' };
  }
  // WHATWG URL parsing has already canonicalised IPv4 notations (0x7f000001, 2130706433,
  // 017700000001 → 127.0.0.1) and IPv6 text ([::ffff:127.0.0.1] → [::ffff:7f00:1]), so what we
  // classify is what a socket would connect to.
  const host = url.hostname;
  const bare = bareAddress(host);
  const literal = isIP(bare) !== 0 ? bare : undefined;
  const listed = allow.matchesHost(host);

  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && listed)) {
    // RFC 9700 §2.6 / OIDC Core §16.17: IdP endpoints are TLS-only; file:, data:, gopher: never.
    return { ok: false, code: 'blocked_scheme', host, reason: 'URL must use https' };
  }
  if (url.username || url.password) {
    // Credentials in a URL end up in logs, and fetch refuses them anyway (WHATWG Fetch).
    return { ok: false, code: 'blocked_scheme', host, reason: 'URL must not contain credentials' };
  }
  if (listed) return { ok: true, url, host, literal };

  if (literal !== undefined) {
    const cls = classifyAddress(literal);
    if (cls !== 'public') return { ok: false, code: 'blocked_address', host, reason: `address is ${cls}` };
    return { ok: true, url, host, literal };
  }
  const reason = internalNameReason(host);
  if (reason !== undefined) return { ok: false, code: 'blocked_address', host, reason };
  return { ok: true, url, host, literal };
}

/**
 * Save-time validation of an identity-provider URL (discovery, token, userinfo, JWKS,
 * introspection): `https` (or `http` for an allow-listed host), no credentials, no literal private,
 * loopback, link-local, metadata or reserved address, and no obviously internal host name
 * (`localhost`, `*.localhost`, `*.local`, `*.internal` such as `metadata.google.internal`,
 * `*.home.arpa`, single-label names) unless the allow list names it.
 *
 * It is pure: host names are not resolved here, so a public-looking name that resolves to a private
 * address passes and is refused at connect time by {@link createGuardedFetch}.
 *
 * @param url - the URL as the administrator entered it
 * @param allow - `ALLOW_PRIVATE_IDP_URLS` entries, or an already parsed {@link AllowList}
 * @throws TypeError when `allow` holds an entry that is not a host name, IP address or CIDR.
 * @see protocol.md §2 "Validation at save", §7.6; security-cases RP-49, RP-50; ASVS 5.0 1.3.6
 */
export function validateOutboundUrl(url: string, allow: readonly string[] | AllowList): OutboundUrlCheck {
  const list = isAllowList(allow) ? allow : parseAllowList(allow);
  const result = parseOutboundUrl(url, list);
  return result.ok ? { ok: true } : { ok: false, reason: result.reason };
}

function isAllowList(value: readonly string[] | AllowList): value is AllowList {
  return !Array.isArray(value);
}
