import type { FastifyInstance } from 'fastify';
import type { Services } from '../services/container.ts';
import { VERSION } from '../version.ts';

/** GET /healthcheck: liveness plus storage reachability; 503 when the database does not answer. */
export function registerHealth(app: FastifyInstance, services: Services): void {
  app.get('/healthcheck', async (_request, reply) => {
    let storage = true;
    try {
      await Promise.race([
        services.db.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref()),
      ]);
    } catch {
      storage = false;
    }
    return reply
      .code(storage ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ ok: storage, storage: storage ? services.db.engine : 'unavailable', version: VERSION });
  });
}
