/** fedhir client_credentials → ES256 JWT: ≥ 2× the oidc-provider peer with p99 no worse; ≥ 0.7× sign ceiling. */
import { defineCase } from '../lib/case.ts';
import { fedhirServer } from '../lib/fedhir.ts';
import { basicAuth, FORM_HEADERS, form } from '../lib/request.ts';

export default defineCase({
  name: 'client_credentials',
  reference: 'peer client_credentials',
  target: { ratio: 2.0, alsoP99AtMostReference: true },
  alsoAgainst: [{ reference: 'sign ceiling', ratio: 0.7 }],
  description: 'fedhir POST /oauth2/token client_credentials (Basic) → ES256 JWT',
  async setup(ctx) {
    const fedhir = await fedhirServer(ctx);
    return {
      origin: fedhir.server.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS, authorization: basicAuth(fedhir.client.id, fedhir.client.secret) },
      body: form({ grant_type: 'client_credentials' }),
      rssPid: fedhir.server.pid,
    };
  },
});
