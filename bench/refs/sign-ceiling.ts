/**
 * Sign ceiling: POST (any path) with a form body → parse it, sign one ES256 JWT (key made and
 * imported once), answer a token response. The least work a JWT-issuing token endpoint can do.
 */

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { generateKeyPair, SignJWT } from 'jose';
import { listenAndAnnounce, readBody, sendJson } from './common.ts';

const ISSUER = 'http://127.0.0.1/';
const { privateKey } = await generateKeyPair('ES256');

const server = createServer(async (req, res) => {
  try {
    const form = new URLSearchParams(await readBody(req));
    const now = Math.floor(Date.now() / 1000);
    const clientId = form.get('client_id') ?? 'bench-client';
    const scope = form.get('scope') ?? '';
    const accessToken = await new SignJWT({ client_id: clientId, scope })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'es256-1' })
      .setIssuer(ISSUER)
      .setSubject(clientId)
      .setAudience(ISSUER)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(privateKey);
    sendJson(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: 3600, scope });
  } catch (err) {
    sendJson(res, 500, { error: 'server_error', error_description: String(err) });
  }
});

await listenAndAnnounce(server);
