/**
 * TEMPLATE for a fedhir case — copy to bench/cases/<name>.ts (no leading `_`: files starting with `_`
 * are not run) and fill in the TODOs. This file type-checks but is never loaded by the runner.
 *
 * Shown: "client_credentials → JWT", held to ≥ 2.0× the peer with p99 ≤ the peer's, and ≥ 0.7× the
 * sign ceiling. See bench/cases/README.md for the interface.
 */
import { defineCase } from '../lib/case.ts';
import { basicAuth, FORM_HEADERS, form } from '../lib/request.ts';
import type { Child } from '../lib/spawn.ts';

interface Fedhir {
  server: Child;
  /** TODO: whatever fixtures the cases need (client id + secret, a bearer token, a Patient id, …). */
  clientId: string;
  clientSecret: string;
}

export default defineCase({
  name: 'client_credentials', // what --cases matches (or the file name)
  reference: 'peer client_credentials', // the case this one is divided by (same round)
  target: { ratio: 2.0, alsoP99AtMostReference: true },
  alsoAgainst: [{ reference: 'sign ceiling', ratio: 0.7 }],
  // maxRssMb: 250,  (the default for every case with a reference)
  description: 'fedhir POST /oauth2/token client_credentials → ES256 JWT',

  async setup(ctx) {
    // One fedhir server for all fedhir cases: ctx.shared() starts it once per run, whichever case asks
    // first; it is stopped at the end of the run.
    const fedhir = await ctx.shared<Fedhir>('fedhir', async (sctx) => {
      const port = await sctx.freePort();
      const origin = `http://127.0.0.1:${port}`;
      const server = await sctx.spawn('packages/server/dist/main.js', {
        // built by `npm run build`
        name: 'fedhir',
        env: {
          PORT: String(port),
          HOST: '127.0.0.1',
          BASE_URL: `${origin}/`,
          DATA_DIR: sctx.tempDir('fedhir-data-'), // embedded PGlite (ignored when DATABASE_URL is set)
          DATABASE_URL: sctx.databaseUrl, // undefined → removed from the child's env
          REDIS_URL: sctx.redisUrl,
          LOG_LEVEL: 'warn',
          ADMIN_EMAIL: 'admin@bench.example',
          ADMIN_PASSWORD: 'bench-admin-password-0123456789',
          ALLOW_PRIVATE_IDP_URLS: '127.0.0.1',
        },
        readyUrl: `${origin}/healthcheck`,
        readyTimeoutMs: 60_000,
      });
      // TODO: create the fixtures through the API (bounded: every fetch with AbortSignal.timeout):
      //   sign in as the admin → POST /admin/projects → POST /admin/projects/:id/client → {id, secret}
      //   (token-exchange cases: also an identity provider pointing at a ctx.spawnRef('userinfo-server'))
      return { server, clientId: 'TODO', clientSecret: 'TODO' };
    });

    return {
      origin: fedhir.server.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS, authorization: basicAuth(fedhir.clientId, fedhir.clientSecret) },
      body: form({ grant_type: 'client_credentials' }),
      // next: () => ({ body: … }),   a different body per request (cheap: it runs in the load generator)
      rssPid: fedhir.server.pid, // RSS sampled during the measured run, checked against maxRssMb
    };
  },

  // Optional, after all rounds: extra failure reasons (see exchange-miss-ceiling.ts for an example).
  // async check(ctx, totals) { return []; },

  // Optional: children started through ctx are stopped anyway.
  // async teardown(ctx) {},
});
