import type { ClientApplication, IdentityProvider, Resource, User } from '../model/types.ts';

/** Stored-only fields (digests, sealed values) that no response ever carries. */
type StoredClient = ClientApplication & {
  secretDigest?: string;
  retiringSecretDigest?: string;
  retiringSecretExpires?: string;
};

/** The provider's client secret is write-only: reads show `clientSecretSet: true` instead. */
export function presentIdentityProvider(stored: IdentityProvider): IdentityProvider {
  const {
    clientSecretSealed,
    clientSecret: _c,
    ...idp
  } = stored as IdentityProvider & { clientSecretSealed?: string };
  return { ...idp, ...(clientSecretSealed ? { clientSecretSet: true } : {}) } as IdentityProvider;
}

/**
 * The outward form of a ClientApplication: the secret digests and the sealed provider secret never
 * leave the server (protocol.md §1, write-only secrets).
 */
export function presentClient(stored: ClientApplication): ClientApplication {
  const {
    secretDigest: _s,
    retiringSecretDigest: _r,
    retiringSecretExpires: _e,
    secret: _p,
    ...rest
  } = stored as StoredClient;
  if (rest.identityProvider) rest.identityProvider = presentIdentityProvider(rest.identityProvider);
  return rest;
}

/** The outward form of a User: `passwordHash` is served to no one. */
export function presentUser(stored: User): User {
  const { passwordHash: _h, ...rest } = stored;
  return rest;
}

/** Removes every server-only field of any resource before it is answered. */
export function present<T extends Resource>(resource: T): T {
  if (resource.resourceType === 'ClientApplication') return presentClient(resource as never) as unknown as T;
  if (resource.resourceType === 'User') return presentUser(resource as never) as unknown as T;
  if (resource.resourceType === 'DomainConfiguration' && resource.identityProvider) {
    return {
      ...resource,
      identityProvider: presentIdentityProvider(resource.identityProvider as IdentityProvider),
    };
  }
  return resource;
}
