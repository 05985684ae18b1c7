/**
 * Reference: the exchange ceiling plus one keep-alive GET to the loopback userinfo server, with a new
 * subject token per request. Also shows the `check()` hook: 1 provider call per distinct token.
 */
import { defineCase } from '../lib/case.ts';
import { ACCESS_TOKEN_TYPE, distinctTokens, FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';
import type { Child } from '../lib/spawn.ts';
import { oneCallPerToken } from '../lib/userinfo-stats.ts';

let userinfo: Child | undefined;
let nextToken: ReturnType<typeof distinctTokens> | undefined;

export default defineCase({
  name: 'exchange-miss ceiling',
  reference: null,
  description:
    'exchange ceiling + one keep-alive GET to the loopback userinfo server (new token per request)',
  async setup(ctx) {
    userinfo = await ctx.spawnRef('userinfo-server');
    const ref = await ctx.spawnRef('exchange-ceiling', {
      args: ['--mode', 'miss', '--userinfo', userinfo.origin],
    });
    const tokens = distinctTokens('user1');
    nextToken = tokens;
    const prefix = `${form({ grant_type: TOKEN_EXCHANGE, client_id: 'bench-client', subject_token_type: ACCESS_TOKEN_TYPE })}&subject_token=`;
    return {
      origin: ref.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS },
      body: `${prefix}${tokens()}`,
      // Tokens are URL-safe, so no encoding is needed: this runs once per request in the load generator.
      next: () => ({ body: `${prefix}${tokens()}` }),
      rssPid: ref.pid,
    };
  },
  async check(_ctx, totals) {
    if (!userinfo || !nextToken) return ['userinfo server not started'];
    return oneCallPerToken(userinfo.origin, nextToken.prefix, totals.ok2xx);
  },
});
