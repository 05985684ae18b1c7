/** Small helpers for building requests in case files. */
import { randomBytes } from 'node:crypto';

/** `application/x-www-form-urlencoded` body from an object (undefined values are left out). */
export function form(fields: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) p.append(k, v);
  return p.toString();
}

export const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' } as const;

/** `Authorization: Basic …` value (RFC 6749 §2.3.1: form-encode id and secret first). */
export function basicAuth(clientId: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
}

/**
 * A cheap generator of distinct tokens, `<user>.<run>-<n>`, for "a new subject token per request"
 * (the userinfo server maps `<user>.<anything>` to sub=<user>, email=<user>@bench.example). Its
 * `prefix` is shared by its tokens only, so a check can count this generator's provider calls apart
 * from other cases' calls to the same provider.
 */
export function distinctTokens(user: string): (() => string) & { prefix: string } {
  const prefix = `${user}.${randomBytes(6).toString('base64url')}-`;
  let n = 0;
  return Object.assign(() => `${prefix}${(n++).toString(36)}`, { prefix });
}

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
