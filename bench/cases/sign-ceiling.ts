/** Reference: the least a JWT token endpoint can do — parse a form, sign one ES256 JWT. */
import { defineCase } from '../lib/case.ts';
import { basicAuth, FORM_HEADERS, form } from '../lib/request.ts';
import { PEER_CLIENT_ID, PEER_CLIENT_SECRET } from '../refs/fixtures.ts';

export default defineCase({
  name: 'sign ceiling',
  reference: null,
  description: 'node:http: parse a form, sign one ES256 JWT (jose)',
  async setup(ctx) {
    const ref = await ctx.spawnRef('sign-ceiling');
    return {
      origin: ref.origin,
      method: 'POST',
      path: '/oauth2/token',
      // Same request as the peer's (the ceiling does not check the credentials).
      headers: { ...FORM_HEADERS, authorization: basicAuth(PEER_CLIENT_ID, PEER_CLIENT_SECRET) },
      body: form({ grant_type: 'client_credentials', scope: 'api' }),
      rssPid: ref.pid,
    };
  },
});
