import type { FastifyInstance } from 'fastify';
import { TOKEN_TYPE_ACCESS } from '../federation/exchange.ts';
import { attempt } from '../http/attempts.ts';
import { identifyClient } from '../oauth/client-auth.ts';
import { clientKey } from '../rate-limit/failure-limiter.ts';
import type { Services } from '../services/container.ts';

/**
 * POST /auth/exchange (Medplum's legacy token exchange; deprecated): same result and the same rules
 * as the RFC 8693 grant (protocol.md §4); it carries no client credentials, so it is refused for
 * clients whose `publicExchange` is false. Answers a `Deprecation` header (RFC 9745).
 */
export function registerLegacyExchange(app: FastifyInstance, services: Services): void {
  app.post<{ Body: { externalAccessToken: string; clientId: string; scope?: string; nonce?: string } }>(
    '/auth/exchange',
    {
      schema: {
        body: {
          type: 'object',
          required: ['externalAccessToken', 'clientId'],
          properties: {
            externalAccessToken: { type: 'string', minLength: 1, maxLength: 8192 },
            clientId: { type: 'string', minLength: 1, maxLength: 64 },
            scope: { type: 'string', maxLength: 2048 },
            nonce: { type: 'string', maxLength: 512 },
          },
        },
      },
    },
    async (request, reply) => {
      // The grant's failure budget and audit trail apply here too (protocol.md §4, §7.9; TX-31, TX-32):
      // both count against the same client key, so the legacy door is no way around the limit.
      const issued = await attempt(
        services,
        {
          action: 'exchange',
          ip: request.ip,
          keys: [clientKey(request.body.clientId)],
          clientId: request.body.clientId,
          surface: 'http',
        },
        async () => {
          const identity = await identifyClient(services.clients, {
            authorization: undefined,
            clientId: request.body.clientId,
            clientSecret: undefined,
            clientAssertion: undefined,
          });
          return services.exchange.exchange({
            identity,
            subjectToken: request.body.externalAccessToken,
            subjectTokenType: TOKEN_TYPE_ACCESS,
            scope: request.body.scope,
            membershipId: undefined,
            audience: undefined,
            resource: undefined,
            requestedTokenType: undefined,
            actorToken: undefined,
            actorTokenType: undefined,
            nonce: request.body.nonce,
          });
        },
        ({ response, issuedTo }) => ({
          ...issuedTo,
          projectId: response.project.reference.replace('Project/', ''),
        }),
      );
      return reply
        .headers({
          'cache-control': 'no-store',
          pragma: 'no-cache',
          deprecation: 'true',
          link: '</docs/token-exchange.md>; rel="deprecation"',
        })
        .send(issued.response);
    },
  );
}
