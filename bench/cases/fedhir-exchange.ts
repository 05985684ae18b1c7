/**
 * fedhir token exchange (default scope: access + ID + refresh token), three ways:
 * userinfo cached (one token), userinfo miss (a new token per request; the provider must see exactly
 * one call per distinct token), and local jwks verification (a new JWT per request).
 */
import { defineCase } from '../lib/case.ts';
import { fedhirServer, JWKS_AUDIENCE } from '../lib/fedhir.ts';
import { ACCESS_TOKEN_TYPE, distinctTokens, FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';

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
      await fetch(`${fedhir.idp.origin}/reset`, { method: 'POST', signal: AbortSignal.timeout(5000) });
      const next = distinctTokens('user1');
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
    async check(ctx) {
      const fedhir = await fedhirServer(ctx);
      const stats = (await (
        await fetch(`${fedhir.idp.origin}/stats`, { signal: AbortSignal.timeout(5000) })
      ).json()) as {
        calls: number;
        distinctTokens: number;
      };
      return stats.calls === stats.distinctTokens
        ? []
        : [
            `the provider saw ${stats.calls} userinfo calls for ${stats.distinctTokens} distinct tokens (want equal)`,
          ];
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
