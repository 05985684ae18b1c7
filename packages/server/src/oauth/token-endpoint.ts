import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditAction } from '../audit/audit-log.ts';
import { attempt } from '../http/attempts.ts';
import { clientKey } from '../rate-limit/failure-limiter.ts';
import type { Services } from '../services/container.ts';
import { identifyClient } from './client-auth.ts';
import { InvalidRequest, UnsupportedGrantType } from './errors.ts';
import { requireFormBody, withStrictForms } from './form-body.ts';
import { GRANTS } from './grants/index.ts';
import { parseOAuthParams } from './params.ts';

/** RFC 6749 §2.3.1: credentials never travel in the query string (OP-29). */
export function assertNoQueryCredentials(request: FastifyRequest): void {
  const query = request.query as Record<string, unknown>;
  for (const name of ['client_secret', 'code', 'refresh_token', 'subject_token', 'code_verifier']) {
    if (query && Object.hasOwn(query, name))
      throw new InvalidRequest(`${name} must not be sent in the query string`);
  }
}

const AUDIT_ACTIONS: Record<string, AuditAction> = {
  authorization_code: 'token',
  refresh_token: 'refresh',
  client_credentials: 'client-credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange': 'exchange',
};

/** The client id of a Basic header, for rate-limit keys only (client-auth.ts does the real parsing). */
function basicUser(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, Math.min(colon, 256)) : undefined;
}

/**
 * POST /oauth2/token as a list of small steps: form body only, parameters single-valued, client
 * identified once, grant dispatched through the registry. Every answer, success or error, carries
 * `Cache-Control: no-store` (RFC 6749 §5.1, OP-33).
 */
export function registerTokenEndpoint(app: FastifyInstance, services: Services): void {
  withStrictForms(app, services.config.bodyLimit, (scope) => registerRoutes(scope, services));
}

function registerRoutes(app: FastifyInstance, services: Services): void {
  app.post('/oauth2/token', { onRequest: requireFormBody }, async (request, reply) => {
    assertNoQueryCredentials(request);
    const params = parseOAuthParams(request.body);
    const grantType = params.grant_type;
    if (grantType === undefined) throw new InvalidRequest('grant_type is required');
    const grant = GRANTS.get(grantType);
    if (!grant) throw new UnsupportedGrantType(`unsupported grant_type`);
    const claimedClient = params.client_id ?? basicUser(request.headers.authorization);
    const issued = await attempt(
      services,
      {
        action: AUDIT_ACTIONS[grantType] ?? 'token',
        ip: request.ip,
        keys: claimedClient ? [clientKey(claimedClient)] : [],
        clientId: claimedClient,
        surface: 'oauth',
      },
      async () => {
        const identity = await identifyClient(services.clients, {
          authorization: request.headers.authorization,
          clientId: params.client_id,
          clientSecret: params.client_secret,
          clientAssertion: params.client_assertion,
        });
        return grant.handle({ services, params, identity, ip: request.ip });
      },
      ({ response, issuedTo }) => ({
        userId: issuedTo.userId,
        loginId: issuedTo.loginId,
        projectId: response.project.reference.replace('Project/', ''),
      }),
    );
    return reply
      .headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
      .type('application/json')
      .send(issued.response);
  });
  app.get('/oauth2/token', async (_request, reply) => {
    return reply
      .code(405)
      .headers({ allow: 'POST', 'cache-control': 'no-store', pragma: 'no-cache' })
      .send({ error: 'invalid_request', error_description: 'use POST' });
  });
}
