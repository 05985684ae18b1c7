import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerAdminRoutes } from './admin/routes.ts';
import { registerLegacyExchange } from './auth/exchange-route.ts';
import { registerAuthRoutes } from './auth/routes.ts';
import { NotFound } from './errors/http-errors.ts';
import { registerExternalRoutes } from './federation/routes.ts';
import { registerSigninRoutes } from './federation/signin-routes.ts';
import { registerFhirRoutes } from './fhir/routes.ts';
import { registerCors } from './http/cors.ts';
import { errorHandler, surfaceOf } from './http/error-handler.ts';
import { registerHealth } from './http/health.ts';
import { loggerOptions } from './http/logger.ts';
import { deferredChildLogger } from './http/request-logger.ts';
import { registerAuthorize } from './oauth/authorize/routes.ts';
import { registerDiscovery } from './oauth/discovery.ts';
import { registerSessionEndpoints } from './oauth/session-endpoints.ts';
import { registerTokenEndpoint } from './oauth/token-endpoint.ts';
import type { Services } from './services/container.ts';

const PAGE_HEADERS = {
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
};

export interface BuildOptions {
  /** Replace the logger (tests capture log output to scan it for secrets). */
  logger?: FastifyInstance['log'] | boolean;
}

/**
 * Builds the Fastify application without listening: `main.ts` listens, tests listen on port 0.
 */
export async function buildApp(services: Services, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { config } = services;
  const app = Fastify({
    ...(options.logger === undefined || options.logger === true
      ? { logger: loggerOptions(config.logLevel), childLoggerFactory: deferredChildLogger }
      : options.logger === false
        ? { logger: false }
        : { loggerInstance: options.logger, childLoggerFactory: deferredChildLogger }),
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    // RB-03: bound what a request may carry before any handler runs.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 512 },
    // RB-04: `__proto__` / `constructor.prototype` keys in JSON are an error, not a pollution vector.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Schemas validate exactly what was sent: no silent coercion of "yes" into true.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  // The Medplum SDK sends every JSON body as application/fhir+json (protocol.md §2).
  app.addContentTypeParser(
    ['application/fhir+json', 'application/json-patch+json', 'application/scim+json'],
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  await app.register(formbody, { bodyLimit: config.bodyLimit });
  registerCors(app);

  app.decorateRequest('auth', undefined);
  // Hosted pages are never framed and never cached (RFC 6749 §10.13, OP-17).
  // A callback hook, not an async one: it runs on every response, and has nothing to await.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (surfaceOf(request.url) === 'page') reply.headers(PAGE_HEADERS);
    done(null, payload);
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(async (request) => {
    throw new NotFound(`No route for ${request.method} ${request.url.split('?', 1)[0]}`);
  });

  registerHealth(app, services);
  registerAdminRoutes(app, services);
  registerAuthRoutes(app, services);
  registerTokenEndpoint(app, services);
  registerSessionEndpoints(app, services);
  registerDiscovery(app, services);
  registerAuthorize(app, services);
  registerFhirRoutes(app, services);
  registerExternalRoutes(app, services);
  registerSigninRoutes(app, services);
  registerLegacyExchange(app, services);
  return app;
}
