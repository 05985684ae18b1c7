/**
 * fedhir token exchange (default scope: access + ID + refresh token), three ways:
 * userinfo cached (one token), userinfo miss (a new token per request; the provider must see exactly
 * one call per distinct token), and local jwks verification (a new JWT per request).
 */
import { defineCase } from '../lib/case.ts';
import { fedhirServer, JWKS_AUDIENCE } from '../lib/fedhir.ts';
import { ACCESS_TOKEN_TYPE, distinctTokens, FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';
import { oneCallPerToken } from '../lib/userinfo-stats.ts';

/** The miss case's tokens: its check counts the provider's calls for these only. */
let missTokens: ReturnType<typeof distinctTokens> | undefined;

const prefix = (clientId: string) =>
  `${form({ grant_type: TOKEN_EXCHANGE, client_id: clientId, subject_token_type: ACCESS_TOKEN_TYPE })}&subject_token=`;

export default [
  defineCase({
    name: 'token exchange, userinfo cached',
    reference: 'exchange ceiling',
    target: { ratio: 0.7 },
    description: 'the same subject token every request: verification answered by the cache',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      return {
        origin: fedhir.server.origin,
        method: 'POST',
        path: '/oauth2/token',
        headers: { ...FORM_HEADERS },
        body: `${prefix(fedhir.client.id)}user1.cached`,
        rssPid: fedhir.server.pid,
      };
    },
  }),
  defineCase({
    name: 'token exchange, userinfo miss',
    reference: 'exchange-miss ceiling',
    target: { ratio: 0.7 },
    description: 'a new subject token per request: one userinfo call each',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      const next = distinctTokens('user1');
      missTokens = next;
      const body = prefix(fedhir.client.id);
      return {
        origin: fedhir.server.origin,
        method: 'POST',
        path: '/oauth2/token',
        headers: { ...FORM_HEADERS },
        body: `${body}${next()}`,
        next: () => ({ body: `${body}${next()}` }),
        rssPid: fedhir.server.pid,
      };
    },
    async check(ctx, totals) {
      // Counted by this case's token prefix: the cached case asks the same provider again for its
      // one token whenever the bounded subject cache has evicted it, which is correct.
      if (!missTokens) return ['the case was not set up'];
      const fedhir = await fedhirServer(ctx);
      return oneCallPerToken(fedhir.idp.origin, missTokens.prefix, totals.ok2xx);
    },
  }),
  defineCase({
    name: 'token exchange, jwks',
    reference: 'verify ceiling',
    target: { ratio: 0.7 },
    description: 'a new provider-signed JWT access token per request, verified locally',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      const count = ctx.quick ? 20_000 : 150_000;
      const minted = (await (
        await fetch(`${fedhir.idp.origin}/mint`, {
          method: 'POST',
          body: JSON.stringify({ count, aud: JWKS_AUDIENCE, user: 'user1' }),
          signal: AbortSignal.timeout(600_000),
        })
      ).json()) as { tokens: string[] };
      let i = 0;
      const body = prefix(fedhir.jwksClient.id);
      const nextToken = () => minted.tokens[i++ % minted.tokens.length];
      return {
        origin: fedhir.server.origin,
        method: 'POST',
        path: '/oauth2/token',
        headers: { ...FORM_HEADERS },
        body: `${body}${nextToken()}`,
        next: () => ({ body: `${body}${nextToken()}` }),
        rssPid: fedhir.server.pid,
      };
    },
  }),
];
