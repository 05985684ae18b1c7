import { BadRequest } from '../errors/http-errors.ts';
import { COMMON_PARAMS, SEARCH_PARAMS, type SearchParamDef } from './search-params.ts';

export interface SearchQuery {
  /** WHERE clause (without the keyword) over table `resource`, and its parameters. */
  where: string;
  params: unknown[];
  orderBy: string;
  count: number;
  offset: number;
  total: 'none' | 'accurate';
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;
const MAX_OFFSET = 10_000;
const MAX_VALUES = 50;

const DATE_PREFIX = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}(-\d{2}(-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?)$/;

/** Escapes LIKE wildcards so a search value is matched literally. */
function likePrefix(value: string): string {
  return `${value.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

class Builder {
  readonly params: unknown[] = [];
  readonly clauses: string[] = [];
  add(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
}

function splitValues(raw: string): string[] {
  // FHIR R4 §3.1.1.5: a comma separates alternatives (OR); `\,` is a literal comma.
  const values = raw.split(/(?<!\\),/).map((v) => v.replace(/\\,/g, ','));
  if (values.length > MAX_VALUES) throw new BadRequest('Too many search values');
  return values;
}

function dateClause(b: Builder, column: string, raw: string, name: string): string {
  const match = DATE_PREFIX.exec(raw);
  if (!match) throw new BadRequest(`Invalid date in ${name}: ${raw.slice(0, 40)}`, name);
  const prefix = match[1] ?? 'eq';
  const value = match[2] as string;
  const ops: Record<string, string> = { gt: '>', lt: '<', ge: '>=', le: '<=', sa: '>', eb: '<' };
  if (prefix === 'eq' || prefix === 'ap') return `${column} LIKE ${b.add(`${value}%`)}`;
  if (prefix === 'ne') return `${column} NOT LIKE ${b.add(`${value}%`)}`;
  return `${column} ${ops[prefix]} ${b.add(value)}`;
}

function tokenClause(b: Builder, path: string, value: string): string {
  const element = `content->${b.add(path)}`;
  const bar = value.indexOf('|');
  const system = bar >= 0 ? value.slice(0, bar) : undefined;
  const code = bar >= 0 ? value.slice(bar + 1) : value;
  const coding = { ...(system ? { system } : {}), ...(code ? { code } : {}) };
  const alternatives = [
    `${element} @> ${b.add(JSON.stringify({ coding: [coding] }))}::jsonb`,
    `${element} @> ${b.add(JSON.stringify([{ coding: [coding] }]))}::jsonb`,
    `${element} @> ${b.add(JSON.stringify(coding))}::jsonb`,
    // An array of Coding (AuditEvent.subtype).
    `${element} @> ${b.add(JSON.stringify([coding]))}::jsonb`,
  ];
  if (system === undefined) alternatives.unshift(`${element} #>> '{}' = ${b.add(code)}`);
  return `(${alternatives.join(' OR ')})`;
}

function valueClause(
  b: Builder,
  name: string,
  def: SearchParamDef,
  value: string,
  modifier: string | undefined,
): string {
  switch (def.kind) {
    case 'string':
      return modifier === 'exact'
        ? `content->>${b.add(def.path)} = ${b.add(value)}`
        : `lower(content->>${b.add(def.path)}) LIKE ${b.add(likePrefix(value))}`;
    case 'human-name': {
      const v = modifier === 'exact' ? b.add(value) : b.add(likePrefix(value));
      const cmp = (expr: string) => (modifier === 'exact' ? `${expr} = ${v}` : `lower(${expr}) LIKE ${v}`);
      const parts = [];
      if (def.path !== 'given') parts.push(cmp(`n->>'family'`));
      if (def.path !== 'family') {
        parts.push(
          `EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(n->'given') = 'array' THEN n->'given' ELSE '[]'::jsonb END) g WHERE ${cmp('g')})`,
        );
      }
      if (def.path === 'any') parts.push(cmp(`n->>'text'`));
      return `EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(content->'name') = 'array' THEN content->'name' ELSE '[]'::jsonb END) n WHERE ${parts.join(' OR ')})`;
    }
    case 'telecom': {
      const system = def.system ? `t->>'system' = ${b.add(def.system)} AND ` : '';
      return `EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(content->'telecom') = 'array' THEN content->'telecom' ELSE '[]'::jsonb END) t WHERE ${system}lower(t->>'value') = ${b.add(value.toLowerCase())})`;
    }
    case 'identifier': {
      const bar = value.indexOf('|');
      const identifier =
        bar >= 0
          ? { ...(bar > 0 ? { system: value.slice(0, bar) } : {}), value: value.slice(bar + 1) }
          : { value };
      return `content->'identifier' @> ${b.add(JSON.stringify([identifier]))}::jsonb`;
    }
    case 'token':
      return tokenClause(b, def.path, value);
    case 'reference': {
      const element = `content->${b.add(def.path)}`;
      const refs = value.includes('/') ? [value] : [value];
      const exact = b.add(refs[0]);
      const suffix = value.includes('/')
        ? undefined
        : b.add(`%/${value.replace(/[\\%_]/g, (c) => `\\${c}`)}`);
      const single = suffix
        ? `(${element}->>'reference' = ${exact} OR ${element}->>'reference' LIKE ${suffix})`
        : `${element}->>'reference' = ${exact}`;
      const inArray = `${element} @> ${b.add(JSON.stringify([{ reference: value }]))}::jsonb`;
      return `(${single} OR ${inArray})`;
    }
    case 'date':
      return dateClause(b, `content->>${b.add(def.path)}`, value, name);
  }
}

function intParam(raw: string | undefined, name: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d{1,6}$/.test(raw)) throw new BadRequest(`${name} must be a non-negative integer`, name);
  return Math.min(Number(raw), max);
}

/**
 * Turns a FHIR search query string into SQL over the `resource` table, always confined to one
 * project (isolation is part of every query, not a filter applied afterwards). Every value is a bound
 * parameter; unknown parameters answer 400 rather than being silently ignored.
 */
export function buildSearch(
  resourceType: string,
  projectId: string,
  query: Record<string, string | string[] | undefined>,
): SearchQuery {
  const b = new Builder();
  b.clauses.push(
    `resource_type = ${b.add(resourceType)}`,
    'NOT deleted',
    `project_id = ${b.add(projectId)}::uuid`,
  );
  const defs = SEARCH_PARAMS[resourceType] ?? {};
  let orderBy = 'last_updated DESC, id';
  let total: 'none' | 'accurate' = 'accurate';

  for (const [rawKey, rawValue] of Object.entries(query)) {
    const values = Array.isArray(rawValue) ? rawValue : [rawValue ?? ''];
    const [name, modifier] = rawKey.split(':', 2) as [string, string | undefined];
    if (COMMON_PARAMS.has(name)) {
      if (name === '_id') {
        for (const v of values) b.clauses.push(`id::text = ANY(${b.add(splitValues(v))})`);
      } else if (name === '_lastUpdated') {
        for (const v of values) {
          b.clauses.push(
            `(${splitValues(v)
              .map((x) =>
                dateClause(
                  b,
                  `to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
                  x,
                  name,
                ),
              )
              .join(' OR ')})`,
          );
        }
      } else if (name === '_sort') {
        const sort = values[0];
        if (sort === '_lastUpdated') orderBy = 'last_updated ASC, id';
        else if (sort === '-_lastUpdated') orderBy = 'last_updated DESC, id';
        else throw new BadRequest('Only _sort=_lastUpdated and -_lastUpdated are supported', '_sort');
      } else if (name === '_total') {
        total = values[0] === 'none' ? 'none' : 'accurate';
      }
      continue;
    }
    const def = defs[name];
    if (!def)
      throw new BadRequest(
        `Unknown search parameter "${name.slice(0, 60)}" for ${resourceType}`,
        name.slice(0, 60),
      );
    if (modifier !== undefined && modifier !== 'exact') {
      throw new BadRequest(`Unsupported search modifier :${modifier.slice(0, 20)}`, name);
    }
    for (const v of values) {
      if (v === '') continue;
      b.clauses.push(
        `(${splitValues(v)
          .map((x) => valueClause(b, name, def, x, modifier))
          .join(' OR ')})`,
      );
    }
  }

  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  return {
    where: b.clauses.join(' AND '),
    params: b.params,
    orderBy,
    count: intParam(one(query._count), '_count', DEFAULT_COUNT, MAX_COUNT),
    offset: intParam(one(query._offset), '_offset', 0, MAX_OFFSET),
    total,
  };
}
