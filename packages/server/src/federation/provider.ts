import * as oauth from 'oauth4webapi';
import type { IdentityProvider } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import { TtlCache } from '../services/ttl-cache.ts';
import { OutboundError } from './outbound/index.ts';

/** An identity provider as stored: its client secret sealed with SECRET_KEY. */
export type StoredIdentityProvider = IdentityProvider & { clientSecretSealed?: string };

/** Why talking to a provider failed, in words safe to show (no upstream body is ever echoed). */
export class ProviderError extends Error {
  constructor(
    readonly kind: 'unavailable' | 'rejected' | 'invalid-response' | 'misconfigured' | 'rate-limited',
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** RB-11: the leeway on ID token times (`exp`, `nbf`, `iat`), in seconds (OIDC Core §3.1.3.7 steps 9–10). */
export const CLOCK_TOLERANCE_SECONDS = 60;

/** RP-27: an unknown `kid` forces a JWKS refetch at most this often per key set. */
const KEY_REFETCH_COOLDOWN_MS = 30_000;

/**
 * One provider's key set, shared by every sign-in against it (oauth4webapi's `jwksCache`: reused
 * for 5 minutes), and when an unknown `kid` last forced a refetch. OIDC Core §10.1.1: a provider
 * rotates by publishing a new key, so a `kid` the cached set lacks earns one refetch — but a spray
 * of random kids must not turn fedhir into a JWKS hammer, hence the cooldown.
 */
export class ProviderKeys {
  readonly cache: oauth.JWKSCacheInput = {};
  private forcedAt = Number.NEGATIVE_INFINITY;

  /** When the cached set was downloaded (epoch seconds), if it was. */
  get downloadedAt(): number | undefined {
    return (this.cache as Partial<oauth.ExportedJWKSCache>).uat;
  }

  /** Forgets the cached set if the cooldown allows a forced refetch; answers whether it did. */
  forceRefetch(now = Date.now()): boolean {
    if (now - this.forcedAt < KEY_REFETCH_COOLDOWN_MS) return false;
    this.forcedAt = now;
    const cache = this.cache as Partial<oauth.ExportedJWKSCache>;
    delete cache.jwks;
    delete cache.uat;
    return true;
  }

  /** Records a refetch the library made by itself (its cached set was stale). */
  refetched(now = Date.now()): void {
    this.forcedAt = now;
  }
}

interface ProviderCaches {
  discovery: TtlCache<oauth.AuthorizationServer>;
  keys: TtlCache<ProviderKeys>;
}

/** Caches per services container (one per process in production; one per test server in tests). */
const caches = new WeakMap<Services, ProviderCaches>();

function cachesOf(services: Services): ProviderCaches {
  let found = caches.get(services);
  if (!found) {
    found = {
      discovery: new TtlCache<oauth.AuthorizationServer>(60 * 60 * 1000, 1000),
      keys: new TtlCache<ProviderKeys>(24 * 60 * 60 * 1000, 1000),
    };
    caches.set(services, found);
  }
  return found;
}

function keysFor(services: Services, jwksUri: string | undefined): ProviderKeys {
  if (!jwksUri) return new ProviderKeys();
  const { keys } = cachesOf(services);
  let found = keys.get(jwksUri);
  if (!found) {
    found = new ProviderKeys();
    keys.set(jwksUri, found);
  }
  return found;
}

export interface ResolvedProvider {
  /** The key external subjects are namespaced by: the issuer, or the provider's own origin. */
  key: string;
  /** Whether `issuer` is known, so ID tokens can be validated (signature, iss, aud, nonce). */
  hasIssuer: boolean;
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  clientAuth: oauth.ClientAuth;
  /** The provider's cached key set (ID tokens, JWT userinfo). */
  keys: ProviderKeys;
  /**
   * Options for every oauth4webapi call: the guarded fetch, http only where the guard allows it, and
   * the shared key set.
   */
  options: {
    [oauth.customFetch]: typeof fetch;
    [oauth.allowInsecureRequests]: boolean;
    [oauth.jwksCache]: oauth.JWKSCacheInput;
  };
  config: StoredIdentityProvider;
}

/** Maps an outbound or library failure to a {@link ProviderError}. */
export function providerFailure(err: unknown, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof OutboundError) {
    if (err.code === 'blocked_address' || err.code === 'blocked_scheme') {
      return new ProviderError('misconfigured', `${what}: the identity provider address is not allowed`);
    }
    if (err.code === 'too_large' || err.code === 'redirect') {
      return new ProviderError('invalid-response', `${what}: identity provider answered unexpectedly`);
    }
    return new ProviderError('unavailable', `${what}: identity provider unavailable`);
  }
  if (err instanceof oauth.ResponseBodyError) {
    return new ProviderError('rejected', `${what}: the identity provider refused (${err.error})`);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return new ProviderError('rejected', `${what}: the identity provider refused the token`);
  }
  if (err instanceof oauth.OperationProcessingError || err instanceof oauth.UnsupportedOperationError) {
    return new ProviderError('invalid-response', `${what}: ${err.message}`);
  }
  if (err instanceof TypeError && /fetch|network/i.test(err.message)) {
    return new ProviderError('unavailable', `${what}: identity provider unavailable`);
  }
  return new ProviderError('invalid-response', `${what}: identity provider answered unexpectedly`);
}

function providerKey(idp: IdentityProvider): string {
  if (idp.issuer) return idp.issuer;
  const url = idp.userInfoUrl ?? idp.tokenUrl ?? idp.authorizeUrl ?? idp.introspectionUrl ?? idp.jwksUrl;
  return url ? `urn:fedhir:provider:${new URL(url).origin}` : 'urn:fedhir:provider:unknown';
}

/** RFC 8414 / OIDC Discovery through the guard; the metadata `issuer` must equal the configured one (RP-52). */
async function discover(services: Services, issuer: string): Promise<oauth.AuthorizationServer> {
  const { discovery } = cachesOf(services);
  const cached = discovery.get(issuer);
  if (cached) return cached;
  const issuerUrl = new URL(issuer);
  const options = {
    [oauth.customFetch]: services.outbound as typeof fetch,
    [oauth.allowInsecureRequests]: issuerUrl.protocol === 'http:',
  };
  try {
    const response = await oauth.discoveryRequest(issuerUrl, { ...options, algorithm: 'oidc' });
    const as = await oauth.processDiscoveryResponse(issuerUrl, response);
    discovery.set(issuer, as);
    return as;
  } catch (err) {
    throw providerFailure(err, 'discovery');
  }
}

/**
 * Everything needed to talk to one configured provider: endpoints (configured ones win over
 * discovered ones), the client and its authentication (secret unsealed only here, never logged).
 */
export async function resolveProvider(
  services: Services,
  idp: StoredIdentityProvider,
): Promise<ResolvedProvider> {
  const discovered = idp.issuer ? await discover(services, idp.issuer) : undefined;
  const as: oauth.AuthorizationServer = {
    ...discovered,
    issuer: idp.issuer ?? providerKey(idp),
    ...(idp.authorizeUrl ? { authorization_endpoint: idp.authorizeUrl } : {}),
    ...(idp.tokenUrl ? { token_endpoint: idp.tokenUrl } : {}),
    ...(idp.userInfoUrl ? { userinfo_endpoint: idp.userInfoUrl } : {}),
    ...(idp.jwksUrl ? { jwks_uri: idp.jwksUrl } : {}),
    ...(idp.introspectionUrl ? { introspection_endpoint: idp.introspectionUrl } : {}),
  };
  const secret = idp.clientSecretSealed ? await services.box.open(idp.clientSecretSealed) : undefined;
  const clientAuth =
    secret === undefined
      ? oauth.None()
      : idp.tokenAuthMethod === 'client_secret_post'
        ? oauth.ClientSecretPost(secret)
        : // RFC 6749 §2.3.1 form-encoding of the credentials is oauth4webapi's job (RP-15).
          oauth.ClientSecretBasic(secret);
  const anyHttp = [
    as.token_endpoint,
    as.userinfo_endpoint,
    as.jwks_uri,
    as.introspection_endpoint,
    as.issuer,
  ].some((u) => typeof u === 'string' && u.startsWith('http:'));
  const keys = keysFor(services, as.jwks_uri);
  return {
    key: providerKey(idp),
    hasIssuer: idp.issuer !== undefined,
    as,
    client: {
      client_id: idp.clientId ?? '',
      id_token_signed_response_alg: 'RS256',
      [oauth.clockTolerance]: CLOCK_TOLERANCE_SECONDS,
    },
    clientAuth,
    keys,
    // The guard refuses plain http except for hosts ALLOW_PRIVATE_IDP_URLS lists; the library's own
    // https check would otherwise refuse even those.
    options: {
      [oauth.customFetch]: services.outbound as typeof fetch,
      [oauth.allowInsecureRequests]: anyHttp,
      [oauth.jwksCache]: keys.cache,
    },
    config: idp,
  };
}
