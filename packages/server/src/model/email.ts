/**
 * E-mail normalisation, applied identically at write and at lookup (protocol.md §2):
 * trimmed, NFC-normalised, lower-cased. Addresses that a person could not tell apart from another
 * one (zero-width or control characters, full-width `＠`, a trailing-dot domain) are refused rather
 * than matched (security case RB-07).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u2028-\u202f]/u;

export function normalizeEmail(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const email = value.trim().normalize('NFC').toLowerCase();
  if (email.length === 0 || email.length > 254 || INVISIBLE.test(email)) return undefined;
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1) return undefined;
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  // Quoted local parts (`"a@example.com"@evil.com`) are legal but only ever seen in attacks.
  if (/[\s"@]/.test(local) || /[\s@]/.test(domain)) return undefined;
  if (domain.startsWith('.') || domain.endsWith('.') || domain.includes('..') || !domain.includes('.')) {
    return undefined;
  }
  return email;
}

/** The lower-cased domain after the last `@` (home-realm discovery matches it exactly). */
export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1);
}
