import type { Resource } from '../model/types.ts';
import type { HistoryEntry } from '../storage/resources.ts';

/** FHIR R4 Bundle shapes answered by search and history. */
export function searchBundle(
  baseUrl: string,
  resourceType: string,
  query: Record<string, unknown>,
  result: {
    resources: Resource[];
    total: number | undefined;
    hasMore: boolean;
    count: number;
    offset: number;
  },
) {
  const link = (offset: number) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (k === '_offset') continue;
      for (const one of Array.isArray(v) ? v : [v]) if (typeof one === 'string') params.append(k, one);
    }
    if (!params.has('_count')) params.set('_count', String(result.count));
    if (offset > 0) params.set('_offset', String(offset));
    return `${baseUrl}fhir/R4/${resourceType}?${params.toString()}`;
  };
  const links = [{ relation: 'self', url: link(result.offset) }];
  if (result.hasMore) links.push({ relation: 'next', url: link(result.offset + result.count) });
  if (result.offset > 0)
    links.push({ relation: 'previous', url: link(Math.max(0, result.offset - result.count)) });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    ...(result.total !== undefined ? { total: result.total } : {}),
    link: links,
    entry: result.resources.map((resource) => ({
      fullUrl: `${baseUrl}fhir/R4/${resource.resourceType}/${resource.id}`,
      resource,
      search: { mode: 'match' },
    })),
  };
}

export function historyBundle(baseUrl: string, entries: HistoryEntry[]) {
  return {
    resourceType: 'Bundle',
    type: 'history',
    total: entries.length,
    entry: entries.map((e) => ({
      fullUrl: `${baseUrl}fhir/R4/${e.resourceType}/${e.id}`,
      ...(e.resource ? { resource: e.resource } : {}),
      request: { method: e.deleted ? 'DELETE' : 'PUT', url: `${e.resourceType}/${e.id}` },
      response: {
        status: e.deleted ? '204' : '200',
        etag: `W/"${e.versionId}"`,
        lastModified: e.lastUpdated,
      },
    })),
  };
}
