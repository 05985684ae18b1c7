/**
 * The outbound guard for every call to an external identity provider (protocol.md §7.6):
 * {@link createGuardedFetch} for the calls, {@link validateOutboundUrl} for save-time checks.
 */
export { type AddressClass, classifyAddress } from './address-classifier.ts';
export { type AllowList, parseAllowList } from './allow-list.ts';
export { type ResolvedAddress, type Resolver, systemResolver } from './checked-lookup.ts';
export { createGuardedFetch, type GuardedFetch, type GuardedFetchOptions } from './guarded-fetch.ts';
export { OutboundError, type OutboundErrorCode } from './outbound-error.ts';
export { type OutboundUrlCheck, validateOutboundUrl } from './validate-outbound-url.ts';
