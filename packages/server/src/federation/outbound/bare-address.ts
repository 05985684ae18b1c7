/**
 * Strips the decorations an IP address may carry in a URL host or from a resolver: `[…]` brackets
 * (RFC 3986 §3.2.2) and a `%zone` identifier (RFC 6874). Returns the bare text; does not validate it.
 */
export function bareAddress(ip: string): string {
  let bare = ip.trim();
  if (bare.startsWith('[') && bare.endsWith(']')) bare = bare.slice(1, -1);
  const zone = bare.indexOf('%');
  return zone === -1 ? bare : bare.slice(0, zone);
}
