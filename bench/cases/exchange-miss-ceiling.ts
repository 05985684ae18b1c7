/**
 * Reference: the exchange ceiling plus one keep-alive GET to the loopback userinfo server, with a new
 * subject token per request. Also shows the `check()` hook: 1 provider call per distinct token.
 */
import { defineCase } from '../lib/case.ts';
import { ACCESS_TOKEN_TYPE, distinctTokens, FORM_HEADERS, form, TOKEN_EXCHANGE } from '../lib/request.ts';
import type { Child } from '../lib/spawn.ts';

let userinfo: Child | undefined;

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
    const nextToken = distinctTokens('user1');
    const prefix = `${form({ grant_type: TOKEN_EXCHANGE, client_id: 'bench-client', subject_token_type: ACCESS_TOKEN_TYPE })}&subject_token=`;
    return {
      origin: ref.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS },
      body: `${prefix}${nextToken()}`,
      // Tokens are URL-safe, so no encoding is needed: this runs once per request in the load generator.
      next: () => ({ body: `${prefix}${nextToken()}` }),
      rssPid: ref.pid,
    };
  },
  async check(_ctx, totals) {
    if (!userinfo) return ['userinfo server not started'];
    const stats = (await (
      await fetch(`${userinfo.origin}/stats`, { signal: AbortSignal.timeout(5000) })
    ).json()) as {
      calls: number;
      distinctTokens: number;
    };
    const failures: string[] = [];
    if (stats.calls !== stats.distinctTokens)
      failures.push(
        `userinfo saw ${stats.calls} calls for ${stats.distinctTokens} distinct tokens (want equal)`,
      );
    if (stats.distinctTokens < totals.ok2xx)
      failures.push(
        `userinfo saw ${stats.distinctTokens} distinct tokens for ${totals.ok2xx} successful exchanges`,
      );
    return failures;
  },
});
