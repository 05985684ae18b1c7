/** Reference: the exchange ceiling plus one ES256 signature verification (the `jwks` path). */
import { randomBytes } from 'node:crypto';
import { defineCase } from '../lib/case.ts';
import { FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';

export default defineCase({
  name: 'verify ceiling',
  reference: null,
  description: 'exchange ceiling + one ES256 jwtVerify of a pre-made token',
  async setup(ctx) {
    const ref = await ctx.spawnRef('exchange-ceiling', { args: ['--mode', 'verify'] });
    // The server verifies its own pre-made IdP token; the body carries a token-sized string so that the
    // form parsing costs what it would with a real JWT.
    const jwtSized = `${randomBytes(27).toString('base64url')}.${randomBytes(150).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
    return {
      origin: ref.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS },
      body: form({
        grant_type: TOKEN_EXCHANGE,
        client_id: 'bench-client',
        subject_token: jwtSized,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }),
      rssPid: ref.pid,
    };
  },
});
