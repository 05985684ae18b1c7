/** Code redemption and refresh (each ≥ 0.6× the exchange ceiling): one seeded code / token per request. */
import { defineCase } from '../lib/case.ts';
import { CODE_VERIFIER, fedhirServer } from '../lib/fedhir.ts';
import { FORM_HEADERS, form } from '../lib/request.ts';

export default [
  defineCase({
    name: 'authorization_code redemption',
    reference: 'exchange ceiling',
    target: { ratio: 0.6 },
    description: 'PKCE-bound single-use code → access + ID + refresh token',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      let i = 0;
      const body = () =>
        form({
          grant_type: 'authorization_code',
          code: fedhir.codes[i++ % fedhir.codes.length],
          code_verifier: CODE_VERIFIER,
        });
      return {
        origin: fedhir.server.origin,
        method: 'POST',
        path: '/oauth2/token',
        headers: { ...FORM_HEADERS },
        body: body(),
        next: () => ({ body: body() }),
        rssPid: fedhir.server.pid,
      };
    },
  }),
  defineCase({
    name: 'refresh',
    reference: 'exchange ceiling',
    target: { ratio: 0.6 },
    description: 'refresh_token rotation → new access + ID + refresh token',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      let i = 0;
      const body = () =>
        form({
          grant_type: 'refresh_token',
          refresh_token: fedhir.refreshTokens[i++ % fedhir.refreshTokens.length],
        });
      return {
        origin: fedhir.server.origin,
        method: 'POST',
        path: '/oauth2/token',
        headers: { ...FORM_HEADERS },
        body: body(),
        next: () => ({ body: body() }),
        rssPid: fedhir.server.pid,
      };
    },
  }),
];
