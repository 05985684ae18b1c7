import { timingSafeEqual } from 'node:crypto';
import { parseCookie, stringifySetCookie } from 'cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Cookies of the hosted pages (protocol.md §2): HttpOnly, SameSite=Lax, path-scoped, Secure when
 * BASE_URL is https. Parsing and serialising are the `cookie` package's; no CORS route reads these.
 */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  return parseCookie(header)[name];
}

export function setCookie(
  reply: FastifyReply,
  name: string,
  value: string,
  options: { path: string; maxAgeSeconds: number; secure: boolean },
): void {
  reply.header(
    'set-cookie',
    stringifySetCookie({
      name,
      value,
      path: options.path,
      maxAge: options.maxAgeSeconds,
      httpOnly: true,
      sameSite: 'lax',
      secure: options.secure,
    }),
  );
}

/** Constant-time equality of a double-submitted CSRF value with its cookie (never throws). */
export function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
