import { InvalidRequest } from './errors.ts';

/** A parsed OAuth request: single-valued string parameters, empty values treated as omitted. */
export type OAuthParams = Readonly<Record<string, string | undefined>>;

const MAX_PARAM_LENGTH = 16_384;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * RFC 6749 §3.1/§3.2: parameters are single-valued and an empty value counts as omitted. A repeated
 * parameter (`code=a&code=b`) or a structured one (`grant_type[]=x`, `__proto__[admin]=1`) is an
 * `invalid_request` (RB-04, OP-10); the result is a null-prototype object so no key can pollute.
 */
export function parseOAuthParams(body: unknown): OAuthParams {
  const params: Record<string, string | undefined> = Object.create(null);
  if (body === undefined || body === null) return params;
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequest('malformed request body');
  for (const [key, value] of Object.entries(body)) {
    if (/[[\]]/.test(key)) throw new InvalidRequest(`malformed parameter name`);
    if (Array.isArray(value)) throw new InvalidRequest(`parameter ${safeName(key)} is repeated`);
    if (typeof value !== 'string') throw new InvalidRequest(`parameter ${safeName(key)} is malformed`);
    if (value.length > MAX_PARAM_LENGTH) throw new InvalidRequest(`parameter ${safeName(key)} is too long`);
    // RFC 6749 Appendix A: no OAuth parameter holds control characters (a NUL would also fail
    // PostgreSQL's text type as a 500, RB-02).
    if (CONTROL.test(value)) throw new InvalidRequest(`parameter ${safeName(key)} is malformed`);
    params[key] = value === '' ? undefined : value;
  }
  return params;
}

/** Parameter names are echoed in errors only when they are plain ASCII words. */
function safeName(key: string): string {
  return /^[a-z_]{1,40}$/i.test(key) ? key : '(unnamed)';
}

/** A required parameter, or `invalid_request` naming it. */
export function required(params: OAuthParams, name: string): string {
  const value = params[name];
  if (value === undefined) throw new InvalidRequest(`${name} is required`);
  return value;
}
