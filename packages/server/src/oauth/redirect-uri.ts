/**
 * Redirect URI rules (protocol.md §2 "Validation at save", §3.2; RFC 9700 §2.1, §4.1.3; RFC 8252).
 */

const FORBIDDEN_SCHEMES = new Set([
  'javascript:',
  'data:',
  'vbscript:',
  'file:',
  'blob:',
  'about:',
  'filesystem:',
]);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Why a redirect URI may not be registered, or undefined when it may (OP-06). */
export function redirectUriProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string' || uri.length === 0) return 'must be a non-empty string';
  if (uri.length > 2000) return 'is too long';
  if (/[\s*]/.test(uri)) return 'must not contain spaces or wildcards';
  if (uri.includes('#')) return 'must not contain a fragment (RFC 6749 §3.1.2)';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'must be an absolute URI';
  }
  if (FORBIDDEN_SCHEMES.has(url.protocol)) return `must not use the ${url.protocol} scheme`;
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) {
    return 'must use https (plain http only for loopback addresses, RFC 8252 §7.3)';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:' && !url.protocol.slice(0, -1).includes('.')) {
    // RFC 8252 §7.1: private-use schemes of native apps are reverse domain names (com.example.app:).
    return 'must use https, loopback http, or a reverse-domain private-use scheme (RFC 8252 §7.1)';
  }
  if (url.username || url.password) return 'must not contain credentials';
  return undefined;
}

/** Loopback redirect (`http://127.0.0.1/…` or `http://[::1]/…`), whose port may vary (RFC 8252 §7.3). */
function loopbackWithoutPort(uri: string): string | undefined {
  const match = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::\d{1,5})?(\/.*)?$/.exec(uri);
  if (!match) return undefined;
  return `http://${match[1]}${match[2] ?? ''}`;
}

/**
 * Exact string comparison against the registered URIs: no prefix, no wildcard, no normalisation
 * (OP-03, OP-04, RP-46), except that a registered loopback IP URI matches any port (OP-05).
 * `localhost` gets no such exception: RFC 8252 §8.3 recommends the IP literal.
 */
export function isRegisteredRedirect(registered: readonly string[], presented: string): boolean {
  if (registered.includes(presented)) return true;
  const loose = loopbackWithoutPort(presented);
  if (!loose) return false;
  return registered.some((r) => {
    const hostPort = r.slice('http://'.length).split('/', 1)[0] ?? '';
    const hasPort = /:\d+$/.test(hostPort) && !hostPort.endsWith(']');
    return !hasPort && loopbackWithoutPort(r) === loose;
  });
}

/** The registered redirect URIs of a client, including Medplum's legacy single `redirectUri`. */
export function registeredRedirects(client: { redirectUris?: string[]; redirectUri?: string }): string[] {
  const all = [...(client.redirectUris ?? [])];
  if (client.redirectUri && !all.includes(client.redirectUri)) all.push(client.redirectUri);
  return all;
}
