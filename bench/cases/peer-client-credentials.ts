/** Reference: oidc-provider 9, client_credentials → ES256 JWT access token, in-memory adapter. */
import { decodeProtectedHeader } from 'jose';
import { defineCase } from '../lib/case.ts';
import { basicAuth, FORM_HEADERS, form } from '../lib/request.ts';
import { PEER_CLIENT_ID, PEER_CLIENT_SECRET } from '../refs/fixtures.ts';

export default defineCase({
  name: 'peer client_credentials',
  reference: null,
  description: 'oidc-provider 9, client_credentials, ES256 JWT access tokens, in-memory adapter',
  async setup(ctx) {
    const peer = await ctx.spawnRef('peer-oidc-provider');
    const headers = { ...FORM_HEADERS, authorization: basicAuth(PEER_CLIENT_ID, PEER_CLIENT_SECRET) };
    const body = form({ grant_type: 'client_credentials', scope: 'api' });

    // Make sure the peer does the work it is the reference for: a JWT signed with ES256.
    const res = await fetch(`${peer.origin}/token`, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let alg: unknown;
    try {
      alg = decodeProtectedHeader((JSON.parse(text) as { access_token: string }).access_token).alg;
    } catch {
      alg = undefined;
    }
    if (res.status !== 200 || alg !== 'ES256')
      throw new Error(
        `peer oidc-provider must issue ES256 JWT access tokens; got ${res.status} alg=${String(alg)}: ${text.slice(0, 300)}`,
      );

    return { origin: peer.origin, method: 'POST', path: '/token', headers, body, rssPid: peer.pid };
  },
});
