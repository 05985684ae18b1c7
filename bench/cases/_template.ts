/**
 * TEMPLATE for a fedhir case — copy to bench/cases/<name>.ts (no leading `_`: files starting with `_`
 * are not run) and fill in the TODOs. This file type-checks but is never loaded by the runner.
 *
 * Shown: "client_credentials → JWT", held to ≥ 2.0× the peer with p99 ≤ the peer's, and ≥ 0.7× the
 * sign ceiling. See bench/cases/README.md for the interface.
 */
import { defineCase } from '../lib/case.ts';
import { fedhirServer } from '../lib/fedhir.ts';
import { basicAuth, FORM_HEADERS, form } from '../lib/request.ts';

export default defineCase({
  name: 'client_credentials', // what --cases matches (or the file name)
  reference: 'peer client_credentials', // the case this one is divided by (same round)
  target: { ratio: 2.0, alsoP99AtMostReference: true },
  alsoAgainst: [{ reference: 'sign ceiling', ratio: 0.7 }],
  // maxRssMb: 250,  (the default for every case with a reference)
  description: 'fedhir POST /oauth2/token client_credentials → ES256 JWT',

  async setup(ctx) {
    // One fedhir server for all fedhir cases (lib/fedhir.ts): built and started as `npm start` runs
    // it, once per run, whichever case asks first, with the fixtures every case needs (a confidential
    // client, a user's access token, a Patient, identity providers, seeded codes and refresh
    // tokens). TODO: a fixture it lacks belongs there, made through the public API.
    const fedhir = await fedhirServer(ctx);

    return {
      origin: fedhir.server.origin,
      method: 'POST',
      path: '/oauth2/token',
      headers: { ...FORM_HEADERS, authorization: basicAuth(fedhir.client.id, fedhir.client.secret) },
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
