/**
 * Loopback userinfo server — the "external identity provider" of the token-exchange cases.
 *
 *   GET /userinfo, Authorization: Bearer <token> → 200 {sub, email, email_verified: true}
 *     An opaque token is `<user>` or `<user>.<anything>` → sub = <user>, email = <user>@bench.example.
 *     A JWT minted by /mint → its own sub and email.
 *     An empty token, or one starting with `invalid` → 401 (RFC 6750).
 *   GET /stats[?prefix=P] → {calls, distinctTokens, repeated} — calls to /userinfo since start; with
 *     `prefix`, only those whose token starts with P (one case's tokens, while other
 *     cases call the same provider); `repeated`: up to 3 tokens that were asked for more than once
 *   GET /.well-known/jwks.json              → this IdP's ES256 public key (kid `bench-idp-1`)
 *   GET /.well-known/openid-configuration   → {issuer, jwks_uri, userinfo_endpoint}
 *   POST /mint {count, aud, user?, ttl?}    → {tokens: [...]} — `count` distinct ES256 JWT access
 *     tokens (iss = this origin, sub = user, email, aud, exp, jti), signed here so that the load
 *     generator spends no CPU on them (for the token-exchange `jwks` case: a new token per request).
 *
 * "Exactly 1 provider call per distinct token" ⇔ calls === distinctTokens.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { listenAndAnnounce, readBody, sendJson } from './common.ts';

const KID = 'bench-idp-1';
const MAX_MINT = 200_000;
const key = await generateKeyPair('ES256', { extractable: true });
const publicJwk = { ...(await exportJWK(key.publicKey)), kid: KID, alg: 'ES256', use: 'sig' };

let calls = 0;
/** Calls per token. */
const tokens = new Map<string, number>();
let origin = '';

function claimsOf(token: string): { sub: string; email: string } {
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const p = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as {
        sub?: unknown;
        email?: unknown;
      };
      if (typeof p.sub === 'string' && typeof p.email === 'string') return { sub: p.sub, email: p.email };
    } catch {
      // not one of ours: fall through
    }
  }
  const dot = token.indexOf('.');
  const user = dot > 0 ? token.slice(0, dot) : token;
  return { sub: user, email: `${user}@bench.example` };
}

async function mint(body: string): Promise<string[]> {
  const req = JSON.parse(body || '{}') as { count?: number; aud?: string; user?: string; ttl?: number };
  const count = Math.min(Math.max(Math.trunc(req.count ?? 1), 1), MAX_MINT);
  const user = req.user ?? 'user1';
  const now = Math.floor(Date.now() / 1000);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push(
      await new SignJWT({ email: `${user}@bench.example`, email_verified: true, scope: 'openid email' })
        .setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'at+jwt' })
        .setIssuer(origin)
        .setSubject(user)
        .setAudience(req.aud ?? 'fedhir')
        .setIssuedAt(now)
        .setExpirationTime(now + (req.ttl ?? 3600))
        .setJti(randomUUID())
        .sign(key.privateKey),
    );
  }
  return out;
}

function stats(prefix: string | null) {
  if (prefix === null) return { calls, distinctTokens: tokens.size, repeated: repeatedOf(tokens) };
  const mine = new Map([...tokens].filter(([token]) => token.startsWith(prefix)));
  let sum = 0;
  for (const n of mine.values()) sum += n;
  return { calls: sum, distinctTokens: mine.size, repeated: repeatedOf(mine) };
}

function repeatedOf(counts: Map<string, number>): { token: string; calls: number }[] {
  const out: { token: string; calls: number }[] = [];
  for (const [token, n] of counts) {
    if (n > 1) out.push({ token: token.length > 40 ? `${token.slice(0, 40)}…` : token, calls: n });
    if (out.length === 3) break;
  }
  return out;
}

const server = createServer(async (req, res) => {
  const url = req.url ?? '/';
  try {
    if (req.method === 'GET' && url.startsWith('/userinfo')) {
      calls++;
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
      if (token) tokens.set(token, (tokens.get(token) ?? 0) + 1);
      if (!token || token.startsWith('invalid')) {
        res.writeHead(401, { 'www-authenticate': token ? 'Bearer error="invalid_token"' : 'Bearer' });
        res.end();
        return;
      }
      sendJson(res, 200, { ...claimsOf(token), email_verified: true });
    } else if (req.method === 'GET' && (url === '/stats' || url.startsWith('/stats?'))) {
      sendJson(res, 200, stats(new URL(url, 'http://x').searchParams.get('prefix')));
    } else if (req.method === 'GET' && url === '/.well-known/jwks.json') {
      sendJson(res, 200, { keys: [publicJwk] });
    } else if (req.method === 'GET' && url === '/.well-known/openid-configuration') {
      sendJson(res, 200, {
        issuer: origin,
        jwks_uri: `${origin}/.well-known/jwks.json`,
        userinfo_endpoint: `${origin}/userinfo`,
      });
    } else if (req.method === 'POST' && url === '/mint') {
      sendJson(res, 200, { tokens: await mint(await readBody(req)) });
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    sendJson(res, 400, { error: 'bad_request', error_description: String(err) });
  }
});

await listenAndAnnounce(server, undefined, (port) => {
  origin = `http://127.0.0.1:${port}`;
});
