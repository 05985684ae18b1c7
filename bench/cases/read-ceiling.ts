/** Reference: Fastify GET /Patient/:id with one indexed SELECT by primary key (same DB engine). */
import { defineCase } from '../lib/case.ts';
import { SEEDED_ROWS, seededId } from '../refs/fixtures.ts';

export default defineCase({
  name: 'read ceiling',
  reference: null,
  description: 'Fastify GET /Patient/:id, one SELECT content … WHERE id = $1 over 1000 seeded rows',
  async setup(ctx) {
    const ref = await ctx.spawnRef('read-ceiling');
    const paths = Array.from({ length: SEEDED_ROWS }, (_, i) => `/Patient/${seededId(i)}`);
    let i = 0;
    return {
      origin: ref.origin,
      method: 'GET',
      path: paths[0]!,
      next: () => ({ path: paths[i++ % SEEDED_ROWS]! }),
      rssPid: ref.pid,
    };
  },
});
