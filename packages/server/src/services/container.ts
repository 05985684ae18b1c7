import { Redis } from 'ioredis';
import { AuditLog } from '../audit/audit-log.ts';
import { AuditStore } from '../audit/audit-store.ts';
import { AccessResolver } from '../auth/access.ts';
import { LoginStore } from '../auth/logins.ts';
import type { Config } from '../config.ts';
import { SecretBox } from '../crypto/secret-box.ts';
import { TokenExchange } from '../federation/exchange.ts';
import { JwksCache } from '../federation/jwks.ts';
import { createGuardedFetch, type GuardedFetch } from '../federation/outbound/index.ts';
import { ClientLogins } from '../oauth/client-logins.ts';
import { ClientStore } from '../oauth/clients.ts';
import { KeyStore } from '../oauth/keys.ts';
import { RefreshTokenStore } from '../oauth/refresh-tokens.ts';
import { JwsSigner } from '../oauth/signer.ts';
import { TokenService } from '../oauth/tokens.ts';
import { FailureLimiter } from '../rate-limit/failure-limiter.ts';
import type { Db } from '../storage/db.ts';
import { migrate } from '../storage/migrations/index.ts';
import { ResourceRepository } from '../storage/resources.ts';
import { InvalidationBus } from './invalidation.ts';
import { TtlCache } from './ttl-cache.ts';

/** Everything the routes need, created once per process and shared by every request. */
export interface Services {
  config: Config;
  db: Db;
  repo: ResourceRepository;
  box: SecretBox;
  bus: InvalidationBus;
  keys: KeyStore;
  tokens: TokenService;
  logins: LoginStore;
  access: AccessResolver;
  clients: ClientStore;
  refreshTokens: RefreshTokenStore;
  clientLogins: ClientLogins;
  /** The only door to identity providers: SSRF guard, no redirects, 5 s, 1 MiB (protocol.md §7.6). */
  outbound: GuardedFetch;
  jwks: JwksCache;
  exchange: TokenExchange;
  /** Counts failed authentication attempts per IP and per client/account (protocol.md §7.9, §7.14). */
  limiter: FailureLimiter;
  /** ExternalIdentity links (project, provider, sub) → membership id; immutable once made. */
  linkCache: TtlCache<string>;
  /** AuditEvents, batched off the request path, never dropped (performance.md). */
  audit: AuditLog;
  redis: Redis | undefined;
  close(): Promise<void>;
}

function connectRedis(url: string, options: { queueUntilConnected?: boolean } = {}): Redis {
  const redis = new Redis(url, {
    // Fail fast while Redis is down instead of queueing requests: callers fall back (TTL caches).
    // The subscriber is the exception: its SUBSCRIBE must wait for the connection, or it is lost and
    // invalidations never arrive (ioredis re-subscribes by itself after a reconnect).
    enableOfflineQueue: options.queueUntilConnected === true,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
    // Commands issued in the same tick (many requests under load) leave in one write; not for the
    // subscriber, whose connection only carries (P)SUBSCRIBE.
    enableAutoPipelining: options.queueUntilConnected !== true,
  });
  redis.on('error', () => {});
  return redis;
}

/**
 * Wires storage, keys and caches. `secretKey` is the resolved SECRET_KEY. Migrations run here, so a
 * process never serves a schema it does not know.
 */
export async function createServices(config: Config, db: Db, secretKey: string): Promise<Services> {
  await migrate(db);
  const repo = new ResourceRepository(db);
  const box = new SecretBox(secretKey);
  const redis = config.redisUrl ? connectRedis(config.redisUrl) : undefined;
  const subscriber = config.redisUrl
    ? connectRedis(config.redisUrl, { queueUntilConnected: true })
    : undefined;
  const bus = new InvalidationBus(redis, subscriber);
  const keys = new KeyStore(db, box, Math.max(config.accessTokenLifetime, 3600));
  await keys.load();
  const signer = new JwsSigner();
  const tokens = new TokenService(keys, config.baseUrl, signer);
  const logins = new LoginStore(db, bus);
  const access = new AccessResolver(tokens, logins, repo, bus);
  const clients = new ClientStore(repo, bus);
  const refreshTokens = new RefreshTokenStore(db);
  const clientLogins = new ClientLogins(db, logins);
  const outbound = createGuardedFetch({ allow: config.allowPrivateIdpUrls });
  const jwks = new JwksCache(outbound);
  // The command connection, not the subscriber: a subscribed ioredis client cannot run commands.
  const limiter = new FailureLimiter({ ...config.rateLimit, ...(redis ? { redis } : {}) });
  const audit = new AuditLog(new AuditStore(db), { flushTimeoutMs: 5000 });
  const services: Services = {
    config,
    db,
    repo,
    box,
    bus,
    keys,
    tokens,
    logins,
    access,
    clients,
    refreshTokens,
    clientLogins,
    outbound,
    jwks,
    limiter,
    linkCache: new TtlCache<string>(10 * 60_000, 100_000),
    audit,
    exchange: undefined as unknown as TokenExchange,
    redis,
    async close() {
      clearInterval(purge);
      // Order matters: audit events reach the database before it closes, counters reach Redis.
      await signer.close();
      await audit.close();
      await limiter.close();
      await outbound.close();
      subscriber?.disconnect();
      redis?.disconnect();
      await db.close();
    },
  };
  services.exchange = new TokenExchange(services);
  // Sealed successors are secrets: forget them once the longest reuse grace (60 s) has passed.
  const purge = setInterval(() => {
    refreshTokens.purgeSuccessors(60).catch(() => {});
  }, 60_000);
  purge.unref();
  return services;
}
