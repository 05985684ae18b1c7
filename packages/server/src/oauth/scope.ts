/**
 * Scope handling (protocol.md §6): the granted scope is echoed honestly. Known OpenID and SMART scopes
 * are kept; a scope the server does not understand is dropped from the grant.
 */
const OPENID_SCOPES = new Set([
  'openid',
  'profile',
  'email',
  'phone',
  'address',
  'offline_access',
  'fhirUser',
  'launch',
  'launch/patient',
  'launch/encounter',
  'online_access',
]);

/** SMART v1 (`.read`/`.write`/`.*`) and v2 (`.cruds` subsets, optional `?query`) resource scopes. */
const SMART_RESOURCE =
  /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)(\?[^\s]{0,512})?$/;

export const DEFAULT_SCOPE = 'openid offline_access';

function normalizeOne(scope: string): string | undefined {
  if (scope === 'offline') return 'offline_access';
  if (OPENID_SCOPES.has(scope)) return scope;
  if (SMART_RESOURCE.test(scope) && !scope.endsWith('.')) return scope;
  return undefined;
}

/** The scopes a request asks for, normalised, de-duplicated, unknown ones dropped, order kept. */
export function grantableScope(requested: string | undefined, fallback = DEFAULT_SCOPE): string {
  const source = requested === undefined ? fallback : requested;
  const out: string[] = [];
  for (const raw of source.split(' ')) {
    if (!raw) continue;
    const scope = normalizeOne(raw);
    if (scope && !out.includes(scope)) out.push(scope);
  }
  return out.join(' ');
}

export function hasScope(scope: string, name: string): boolean {
  return scope.split(' ').includes(name);
}

/** RFC 6749 §6: a refresh may narrow the scope, never widen it. */
export function isSubset(requested: string, granted: string): boolean {
  const grantedSet = new Set(granted.split(' '));
  return requested.split(' ').every((s) => s === '' || grantedSet.has(s));
}
