/** Code redemption and refresh (each ≥ 0.6× the exchange ceiling): one seeded code / token per request. */
import { defineCase } from '../lib/case.ts';
import { CODE_VERIFIER, type Fedhir, fedhirServer } from '../lib/fedhir.ts';
import { FORM_HEADERS, form } from '../lib/request.ts';

/** A token-endpoint case that spends one seeded item (code, refresh token) per request. */
function seededGrantCase(
  name: string,
  description: string,
  items: (fedhir: Fedhir) => string[],
  fields: (item: string) => Record<string, string>,
) {
  return defineCase({
    name,
    reference: 'exchange ceiling',
    target: { ratio: 0.6 },
    description,
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      const pool = items(fedhir);
      let i = 0;
      const body = () => form(fields(pool[i++ % pool.length] as string));
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
  });
}

export default [
  seededGrantCase(
    'authorization_code redemption',
    'PKCE-bound single-use code → access + ID + refresh token',
    (f) => f.codes,
    (code) => ({ grant_type: 'authorization_code', code, code_verifier: CODE_VERIFIER }),
  ),
  seededGrantCase(
    'refresh',
    'refresh_token rotation → new access + ID + refresh token',
    (f) => f.refreshTokens,
    (token) => ({ grant_type: 'refresh_token', refresh_token: token }),
  ),
];
