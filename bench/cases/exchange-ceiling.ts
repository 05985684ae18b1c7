/** Reference: sign an ES256 access token and an RS256 ID token, INSERT the Login row. */
import { defineCase } from '../lib/case.ts';
import { ACCESS_TOKEN_TYPE, FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';

export default defineCase({
  name: 'exchange ceiling',
  reference: null,
  description: 'node:http: sign ES256 access + RS256 ID token, INSERT one row (same DB engine)',
  async setup(ctx) {
    const ref = await ctx.spawnRef('exchange-ceiling', { args: ['--mode', 'exchange'] });
    return {
      origin: ref.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS },
      body: form({
        grant_type: TOKEN_EXCHANGE,
        client_id: 'bench-client',
        subject_token: 'user1.cached-subject-token',
        subject_token_type: ACCESS_TOKEN_TYPE,
      }),
      rssPid: ref.pid,
    };
  },
});
