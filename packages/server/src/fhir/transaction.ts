import { randomUUID } from 'node:crypto';
import type { AuthContext } from '../auth/access.ts';
import { BadRequest } from '../errors/http-errors.ts';
import type { Resource } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import type { FhirRest, InteractionContext } from './rest.ts';

interface Entry {
  fullUrl?: string;
  resource?: Resource;
  request?: { method?: string; url?: string; ifMatch?: string };
}

interface Planned {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  type: string;
  id: string | undefined;
  resource: unknown;
  ifMatch: string | undefined;
}

const URN_UUID = /"urn:uuid:[0-9a-fA-F-]{36}"/g;

function plan(base: string, entries: Entry[]): Planned[] {
  const prefix = new URL(`${base}fhir/R4/`);
  // FHIR R4 §3.1.0.11.2: `urn:uuid:` fullUrls of created entries are replaced, everywhere in the
  // bundle, by the ids the server assigns — assigned ahead so forward references work too.
  const assigned = new Map<string, string>();
  const parsed = entries.map((entry) => {
    const method = entry.request?.method?.toUpperCase();
    if (method !== 'GET' && method !== 'POST' && method !== 'PUT' && method !== 'DELETE') {
      throw new BadRequest(
        'Bundle.entry.request.method must be GET, POST, PUT or DELETE',
        'Bundle.entry.request',
      );
    }
    const url = new URL(entry.request?.url ?? '', prefix);
    if (url.search)
      throw new BadRequest(
        'Searches and conditional requests are not supported in a transaction',
        'Bundle.entry.request.url',
      );
    const [type, id] = url.pathname.slice(prefix.pathname.length).split('/').filter(Boolean) as [
      string | undefined,
      string | undefined,
    ];
    if (!type)
      throw new BadRequest('Bundle.entry.request.url must name a resource type', 'Bundle.entry.request.url');
    if (method === 'POST' && entry.fullUrl?.startsWith('urn:uuid:'))
      assigned.set(entry.fullUrl, `${type}/${randomUUID()}`);
    return { method, type, id, entry } as const;
  });
  return parsed.map(({ method, type, id, entry }) => ({
    method,
    type,
    id: method === 'POST' && entry.fullUrl ? assigned.get(entry.fullUrl)?.split('/')[1] : id,
    resource:
      entry.resource === undefined
        ? undefined
        : JSON.parse(
            JSON.stringify(entry.resource).replace(URN_UUID, (m) =>
              JSON.stringify(assigned.get(JSON.parse(m)) ?? JSON.parse(m)),
            ),
          ),
    ifMatch: entry.request?.ifMatch,
  }));
}

/**
 * A transaction bundle (FHIR R4 §3.1.0.11.2, protocol.md §6): every entry or none. Every entry is
 * authorized first; the entries then run on one database transaction, and the first failure rolls
 * all of them back and answers its error.
 */
export async function runTransaction(
  services: Services,
  rest: FhirRest,
  auth: AuthContext,
  base: string,
  entries: Entry[],
  parseIfMatch: (header: string | undefined) => string | undefined,
) {
  const planned = plan(base, entries);
  for (const p of planned) await rest.authorize(auth, p.type, p.method === 'GET' ? 'read' : 'write');
  const afterCommit: (() => Promise<void>)[] = [];
  const out = await services.db.transaction(async (tx) => {
    const results = [];
    for (const p of planned) {
      const ctx: InteractionContext = {
        tx,
        authorized: true,
        afterCommit,
        ...(p.method === 'POST' && p.id ? { id: p.id } : {}),
      };
      if (p.method === 'GET') {
        if (!p.id)
          throw new BadRequest(
            'GET entries of a transaction must read one resource',
            'Bundle.entry.request.url',
          );
        results.push({ resource: await rest.read(auth, p.type, p.id, ctx), response: { status: '200 OK' } });
      } else if (p.method === 'POST') {
        const created = await rest.create(auth, p.type, p.resource, ctx);
        results.push({
          resource: created,
          response: {
            status: '201 Created',
            location: `${p.type}/${created.id}/_history/${created.meta.versionId}`,
            etag: `W/"${created.meta.versionId}"`,
          },
        });
      } else if (p.method === 'PUT') {
        if (!p.id) throw new BadRequest('PUT entries need a resource id', 'Bundle.entry.request.url');
        const updated = await rest.update(auth, p.type, p.id, p.resource, parseIfMatch(p.ifMatch), ctx);
        results.push({
          resource: updated,
          response: { status: '200 OK', etag: `W/"${updated.meta.versionId}"` },
        });
      } else {
        if (!p.id) throw new BadRequest('DELETE entries need a resource id', 'Bundle.entry.request.url');
        await rest.delete(auth, p.type, p.id, ctx);
        results.push({ response: { status: '200 OK' } });
      }
    }
    return results;
  });
  for (const work of afterCommit) await work();
  return { resourceType: 'Bundle', type: 'transaction-response', entry: out };
}
