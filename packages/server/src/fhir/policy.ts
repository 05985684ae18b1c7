import type { AuthContext } from '../auth/access.ts';
import type { Resource } from '../model/types.ts';
import type { Services } from '../services/container.ts';

export type Operation = 'read' | 'write';

interface AccessPolicyResource extends Resource {
  resource?: { resourceType?: string; readonly?: boolean }[];
}

interface ScopeRule {
  type: string;
  read: boolean;
  write: boolean;
}

/** SMART resource scopes (v1 `.read`/`.write`/`.*`, v2 `.cruds`) as type rules; none → no narrowing. */
export function smartScopeRules(scope: string): ScopeRule[] | undefined {
  const rules: ScopeRule[] = [];
  for (const s of scope.split(' ')) {
    const match = /^(?:patient|user|system)\/(\*|[A-Za-z]+)\.([a-z*]+)(?:\?.*)?$/.exec(s);
    if (!match) continue;
    const [, type, perms] = match as unknown as [string, string, string];
    // SMART v1: read | write | *; v2: a subset of c r u d s in that order (never both forms).
    const v1 = perms === 'read' || perms === 'write' || perms === '*';
    const read = v1 ? perms !== 'write' : /[rs]/.test(perms);
    const write = v1 ? perms !== 'read' : /[cud]/.test(perms);
    rules.push({ type, read, write });
  }
  return rules.length > 0 ? rules : undefined;
}

/**
 * What a caller may do with a resource type: the membership's AccessPolicy (resource-type rules,
 * `readonly`), narrowed — never widened — by the token's SMART resource scopes (protocol.md §6).
 */
export class Policy {
  constructor(
    private readonly policy: AccessPolicyResource | undefined,
    private readonly scopes: ScopeRule[] | undefined,
  ) {}

  allows(resourceType: string, operation: Operation): boolean {
    if (this.policy) {
      const rule = this.policy.resource?.find(
        (r) => r.resourceType === resourceType || r.resourceType === '*',
      );
      if (!rule) return false;
      if (operation === 'write' && rule.readonly) return false;
    }
    if (this.scopes) {
      return this.scopes.some((r) => (r.type === '*' || r.type === resourceType) && r[operation]);
    }
    return true;
  }
}

export async function policyFor(services: Services, auth: AuthContext): Promise<Policy> {
  const ref = auth.membership.accessPolicy?.reference;
  const policy = ref?.startsWith('AccessPolicy/')
    ? await services.repo.read<AccessPolicyResource>('AccessPolicy', ref.slice('AccessPolicy/'.length))
    : undefined;
  return new Policy(
    ref
      ? (policy ?? {
          resourceType: 'AccessPolicy',
          id: '',
          meta: { versionId: '', lastUpdated: '' },
          resource: [],
        })
      : undefined,
    smartScopeRules(auth.claims.scope),
  );
}
