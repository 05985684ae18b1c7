/** Bearer-protected reads: GET /fhir/R4/Patient/:id (≥ 0.6× read ceiling) and GET /auth/me (≥ 0.5×). */
import { defineCase } from '../lib/case.ts';
import { fedhirServer } from '../lib/fedhir.ts';

export default [
  defineCase({
    name: 'GET /fhir/R4/Patient/:id',
    reference: 'read ceiling',
    target: { ratio: 0.6 },
    description: 'bearer check (cached verification and login state) + one indexed read',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      return {
        origin: fedhir.server.origin,
        method: 'GET',
        path: `/fhir/R4/Patient/${fedhir.patientId}`,
        headers: { authorization: `Bearer ${fedhir.userToken}` },
        rssPid: fedhir.server.pid,
      };
    },
  }),
  defineCase({
    name: 'GET /auth/me',
    reference: 'read ceiling',
    target: { ratio: 0.5 },
    description: 'the session document the Medplum SDK reads after every sign-in',
    async setup(ctx) {
      const fedhir = await fedhirServer(ctx);
      return {
        origin: fedhir.server.origin,
        method: 'GET',
        path: '/auth/me',
        headers: { authorization: `Bearer ${fedhir.userToken}` },
        rssPid: fedhir.server.pid,
      };
    },
  }),
];
