import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AuthContext } from '../auth/access.ts';
import { authenticate, authOf } from '../auth/require-auth.ts';
import { BadRequest, HttpError } from '../errors/http-errors.ts';
import { allOk, operationOutcome } from '../errors/operation-outcome.ts';
import type { Resource } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import { historyBundle, searchBundle } from './bundle.ts';
import { capabilityStatement } from './metadata.ts';
import { FhirRest } from './rest.ts';
import { DEFAULT_COUNT, MAX_COUNT } from './search.ts';
import { runTransaction } from './transaction.ts';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

type Query = Record<string, string | string[] | undefined>;
type TypeParams = { resourceType: string };
type IdParams = TypeParams & { id: string };

/** `W/"<versionId>"` (FHIR R4 §3.1.0.5.1) → the version id. */
function parseIfMatch(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^(?:W\/)?"([^"]+)"$/.exec(header.trim());
  return match ? match[1] : header.trim();
}

function sendResource(reply: FastifyReply, baseUrl: string, resource: Resource, status = 200) {
  return reply
    .code(status)
    .headers({
      etag: `W/"${resource.meta.versionId}"`,
      'last-modified': new Date(resource.meta.lastUpdated).toUTCString(),
      ...(status === 201
        ? {
            location: `${baseUrl}fhir/R4/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`,
          }
        : {}),
    })
    .type(FHIR_JSON)
    .send(resource);
}

/**
 * /fhir/R4 (protocol.md §6): every request but /metadata carries a bearer token, and every interaction
 * is confined to the token's project (FhirRest). Handlers are thin: parse, call, render.
 */
export function registerFhirRoutes(app: FastifyInstance, services: Services): void {
  const rest = new FhirRest(services);
  const base = services.config.baseUrl;

  app.get('/fhir/R4/metadata', async (_request, reply) =>
    reply.type(FHIR_JSON).send(capabilityStatement(base)),
  );

  app.register(async (fhir) => {
    fhir.addHook('onRequest', authenticate(services));

    fhir.get<{ Params: TypeParams; Querystring: Query }>('/fhir/R4/:resourceType', async (request, reply) => {
      const { resourceType } = request.params;
      const result = await rest.search(authOf(request), resourceType, request.query);
      return reply.type(FHIR_JSON).send(searchBundle(base, resourceType, request.query, result));
    });

    fhir.post<{ Params: TypeParams }>('/fhir/R4/:resourceType', async (request, reply) => {
      const created = await rest.create(authOf(request), request.params.resourceType, request.body);
      return sendResource(reply, base, created, 201);
    });

    fhir.get<{ Params: IdParams }>('/fhir/R4/:resourceType/:id', async (request, reply) => {
      const { resourceType, id } = request.params;
      if (id === '_history') {
        const count = Math.min(Number((request.query as Query)._count) || DEFAULT_COUNT, MAX_COUNT);
        return reply
          .type(FHIR_JSON)
          .send(historyBundle(base, await rest.typeHistory(authOf(request), resourceType, count)));
      }
      return sendResource(reply, base, await rest.read(authOf(request), resourceType, id));
    });

    fhir.put<{ Params: IdParams }>('/fhir/R4/:resourceType/:id', async (request, reply) => {
      const { resourceType, id } = request.params;
      const updated = await rest.update(
        authOf(request),
        resourceType,
        id,
        request.body,
        parseIfMatch(request.headers['if-match']),
      );
      return sendResource(reply, base, updated);
    });

    fhir.delete<{ Params: IdParams }>('/fhir/R4/:resourceType/:id', async (request, reply) => {
      await rest.delete(authOf(request), request.params.resourceType, request.params.id);
      return reply.code(200).type(FHIR_JSON).send(allOk('Deleted'));
    });

    fhir.get<{ Params: IdParams }>('/fhir/R4/:resourceType/:id/_history', async (request, reply) => {
      const entries = await rest.history(authOf(request), request.params.resourceType, request.params.id);
      return reply.type(FHIR_JSON).send(historyBundle(base, entries));
    });

    fhir.get<{ Params: IdParams & { versionId: string } }>(
      '/fhir/R4/:resourceType/:id/_history/:versionId',
      async (request, reply) => {
        const { resourceType, id, versionId } = request.params;
        return sendResource(reply, base, await rest.vread(authOf(request), resourceType, id, versionId));
      },
    );

    // FHIR R4 §3.1.0.11: a batch runs each entry as its own request (the Medplum SDK's
    // auto-batching sends these).
    fhir.post('/fhir/R4', async (request, reply) => {
      const bundle = request.body as { resourceType?: string; type?: string; entry?: unknown[] };
      if (bundle?.resourceType !== 'Bundle')
        throw new BadRequest('POST /fhir/R4 takes a Bundle', 'resourceType');
      if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
        throw new BadRequest('Bundle.type must be batch or transaction', 'Bundle.type');
      }
      const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
      if (entries.length > 1000) throw new BadRequest('Too many entries (at most 1000)', 'Bundle.entry');
      const auth = authOf(request);
      if (bundle.type === 'transaction') {
        const result = await runTransaction(services, rest, auth, base, entries as never, parseIfMatch);
        return reply.type(FHIR_JSON).send(result);
      }
      const out = [];
      for (const entry of entries) out.push(await runBatchEntry(rest, auth, base, entry));
      return reply.type(FHIR_JSON).send({ resourceType: 'Bundle', type: 'batch-response', entry: out });
    });
  });
}

async function runBatchEntry(rest: FhirRest, auth: AuthContext, base: string, entry: unknown) {
  try {
    const { request, resource } = (entry ?? {}) as {
      request?: { method?: string; url?: string; ifMatch?: string };
      resource?: unknown;
    };
    const method = request?.method?.toUpperCase();
    const url = new URL(request?.url ?? '', `${base}fhir/R4/`);
    const parts = url.pathname
      .slice(new URL(`${base}fhir/R4/`).pathname.length)
      .split('/')
      .filter(Boolean);
    const [type, id] = parts as [string | undefined, string | undefined];
    if (!type) throw new BadRequest('Bundle.entry.request.url must name a resource type');
    const query = Object.fromEntries(url.searchParams.entries());
    if (method === 'GET' && id)
      return { resource: await rest.read(auth, type, id), response: { status: '200 OK' } };
    if (method === 'GET') {
      const result = await rest.search(auth, type, query);
      return { resource: searchBundle(base, type, query, result), response: { status: '200 OK' } };
    }
    if (method === 'POST') {
      const created = await rest.create(auth, type, resource);
      return {
        resource: created,
        response: {
          status: '201 Created',
          location: `${type}/${created.id}/_history/${created.meta.versionId}`,
        },
      };
    }
    if (method === 'PUT' && id)
      return {
        resource: await rest.update(auth, type, id, resource, parseIfMatch(request?.ifMatch)),
        response: { status: '200 OK' },
      };
    if (method === 'DELETE' && id) {
      await rest.delete(auth, type, id);
      return { response: { status: '200 OK' } };
    }
    throw new BadRequest('Unsupported batch entry request');
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    return {
      response: {
        status: String(err.status),
        outcome: operationOutcome(err.issueCode, err.message, err.expression),
      },
    };
  }
}
