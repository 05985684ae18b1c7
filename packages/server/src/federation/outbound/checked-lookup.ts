/**
 * The connect-time half of the outbound guard: a `lookup` for `net.connect` / `tls.connect` that
 * resolves a host name once, checks every resolved address, and hands the socket exactly the
 * addresses it checked.
 *
 * Resolving in the caller and connecting by name afterwards would let a DNS-rebinding server answer
 * a public address to the check and a private one to the connect (time-of-check/time-of-use;
 * security-cases RP-49, protocol.md §8 "Outbound guard"). Here the check and the connect use the same answer, because the
 * socket's own lookup is the check. Only new connections resolve: a pooled keep-alive socket is
 * already connected to an address that was checked when it opened.
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { classifyAddress } from './address-classifier.ts';
import type { AllowList } from './allow-list.ts';
import { bareAddress } from './bare-address.ts';
import { OutboundError } from './outbound-error.ts';

/** One resolved address, as `dns.promises.lookup(host, { all: true })` returns them. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to all its addresses. Injectable so tests never need real DNS. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

/** The system resolver (getaddrinfo, so `/etc/hosts` applies), every address, in the OS's order. */
export const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/** The callback shape of `net.connect`'s `lookup` option, single or `all` answers. */
type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `lookup` function for socket options, as `net.connect({ lookup })` calls it. */
export type SocketLookup = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

/**
 * Resolves `hostname` and returns its addresses if every one is allowed: `public`, or listed in the
 * allow list (by address or CIDR), or the host name itself is listed. One private answer among
 * public ones refuses the whole name, so an attacker cannot mix answers and win a race.
 *
 * @throws OutboundError `blocked_address` when an address is not allowed, `network` when the name
 * does not resolve.
 */
export async function resolveChecked(
  hostname: string,
  resolver: Resolver,
  allow: AllowList,
): Promise<LookupAddress[]> {
  const bare = bareAddress(hostname);
  const literalFamily = isIP(bare);
  const candidates: ResolvedAddress[] =
    literalFamily !== 0 ? [{ address: bare, family: literalFamily }] : await resolve(bare, resolver);
  const nameListed = literalFamily === 0 && allow.matchesHost(bare);
  const checked: LookupAddress[] = [];
  for (const { address } of candidates) {
    const family = isIP(address);
    if (family === 0) throw new OutboundError('network', bare);
    if (!nameListed && classifyAddress(address) !== 'public' && !allow.matchesAddress(address)) {
      throw new OutboundError('blocked_address', bare);
    }
    checked.push({ address: bareAddress(address), family });
  }
  return checked;
}

async function resolve(host: string, resolver: Resolver): Promise<ResolvedAddress[]> {
  let answers: ResolvedAddress[];
  try {
    answers = await resolver(host);
  } catch (cause) {
    throw new OutboundError('network', host, { cause });
  }
  if (answers.length === 0) throw new OutboundError('network', host);
  return answers;
}

/**
 * Builds the socket `lookup` that {@link resolveChecked}s the name and connects only to the checked
 * addresses. It answers both call shapes Node uses: a single address, or `all` addresses when
 * happy-eyeballs (`autoSelectFamily`, on by default since Node 20) is trying several.
 */
export function createCheckedLookup(resolver: Resolver, allow: AllowList): SocketLookup {
  return (hostname, options, callback) => {
    resolveChecked(hostname, resolver, allow).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = wanted === 0 ? addresses : addresses.filter((a) => a.family === wanted);
        const first = usable[0];
        if (first === undefined) {
          callback(new OutboundError('network', bareAddress(hostname)), '');
        } else if (options.all) {
          callback(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}
