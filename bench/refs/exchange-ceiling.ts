/**
 * The token-exchange ceilings, one file, three modes (`--mode`):
 *
 *   exchange  parse the form; sign one ES256 access token and one RS256 ID token; INSERT one row
 *             (the Login) into bench_login; answer a token response.
 *   miss      the same plus, first, one keep-alive GET to the loopback userinfo server
 *             (`--userinfo <origin>`) with the subject token as the bearer — the exchange-miss ceiling.
 *   verify    the same as exchange plus one ES256 jwtVerify of a pre-made token (the `jwks` path).
 *
 * Database: PostgreSQL at BENCH_DATABASE_URL when set, else PGlite (BENCH_PGLITE_DIR) — see db.ts.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { Pool } from 'undici';
import { listenAndAnnounce, readBody, sendJson } from './common.ts';
import { openDb } from './db.ts';

const { values: args } = parseArgs({
  options: { mode: { type: 'string', default: 'exchange' }, userinfo: { type: 'string' } },
});
const mode = args.mode;
if (mode !== 'exchange' && mode !== 'miss' && mode !== 'verify') throw new Error(`unknown --mode ${mode}`);
if (mode === 'miss' && !args.userinfo) throw new Error('--mode miss needs --userinfo <origin>');

const ISSUER = 'http://127.0.0.1/';
const IDP_ISSUER = 'https://idp.bench.example/';
const IDP_AUDIENCE = 'fedhir-bench-api';

const es256 = (await generateKeyPair('ES256')).privateKey;
const rs256 = (await generateKeyPair('RS256', { modulusLength: 2048 })).privateKey;

const db = await openDb();
await db.exec(`CREATE TABLE IF NOT EXISTS bench_login (
  id uuid PRIMARY KEY,
  user_id text NOT NULL,
  client_id text NOT NULL,
  scope text,
  created timestamptz NOT NULL DEFAULT now()
); TRUNCATE bench_login;`);

const userinfo = args.userinfo
  ? new Pool(args.userinfo, {
      connections: 64,
      keepAliveTimeout: 60_000,
      headersTimeout: 5000,
      bodyTimeout: 5000,
    })
  : undefined;

// verify mode: a token "issued by the external IdP", verified on every request (no cache, as jose does).
const idp = mode === 'verify' ? await generateKeyPair('ES256') : undefined;
const premade = idp
  ? await new SignJWT({ email: 'user1@bench.example', scope: 'openid' })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(IDP_ISSUER)
      .setAudience(IDP_AUDIENCE)
      .setSubject('user1')
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(idp.privateKey)
  : '';

async function identify(subjectToken: string): Promise<string> {
  if (userinfo) {
    const { statusCode, body } = await userinfo.request({
      path: '/userinfo',
      method: 'GET',
      headers: { authorization: `Bearer ${subjectToken}` },
    });
    const claims = (await body.json()) as { sub?: string };
    if (statusCode !== 200 || typeof claims.sub !== 'string')
      throw new Error(`userinfo answered ${statusCode}`);
    return claims.sub;
  }
  if (idp) {
    const { payload } = await jwtVerify(premade, idp.publicKey, {
      issuer: IDP_ISSUER,
      audience: IDP_AUDIENCE,
      algorithms: ['ES256'],
    });
    return String(payload.sub);
  }
  const dot = subjectToken.indexOf('.');
  return dot > 0 ? subjectToken.slice(0, dot) : subjectToken || 'user1';
}

const server = createServer(async (req, res) => {
  try {
    const form = new URLSearchParams(await readBody(req));
    const clientId = form.get('client_id') ?? 'bench-client';
    const scope = form.get('scope') ?? 'openid offline_access';
    const userId = await identify(form.get('subject_token') ?? '');
    const loginId = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const accessToken = await new SignJWT({
      login_id: loginId,
      client_id: clientId,
      profile: `Practitioner/${userId}`,
      scope,
      username: userId,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'es256-1' })
      .setIssuer(ISSUER)
      .setSubject(userId)
      .setAudience(ISSUER)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(es256);
    const digest = createHash('sha256').update(accessToken).digest();
    const idToken = await new SignJWT({
      auth_time: now,
      fhirUser: `Practitioner/${userId}`,
      at_hash: digest.subarray(0, 16).toString('base64url'),
      ...(form.get('nonce') ? { nonce: form.get('nonce') } : {}),
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'rs256-1' })
      .setIssuer(ISSUER)
      .setSubject(userId)
      .setAudience(clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(rs256);
    await db.query('INSERT INTO bench_login (id, user_id, client_id, scope) VALUES ($1, $2, $3, $4)', [
      loginId,
      userId,
      clientId,
      scope,
    ]);
    sendJson(res, 200, {
      access_token: accessToken,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
      scope,
      id_token: idToken,
    });
  } catch (err) {
    sendJson(res, 500, { error: 'server_error', error_description: String(err) });
  }
});

await listenAndAnnounce(server, async () => {
  await userinfo?.close();
  await db.close();
});
