/**
 * One typed configuration object, read from the environment once at start.
 *
 * Every variable is declared in {@link CONFIG_VARIABLES} with its default and its documentation;
 * `docs/configuration.md` is generated from that list (`npm run docs:config`) and a test keeps the
 * two in sync. An invalid value fails fast with a one-line reason naming the variable.
 */
import { isIP } from 'node:net';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** TCP port to listen on. */
  port: number;
  /** Interface to bind. */
  host: string;
  /** Public base URL, always ending in `/`. It is the issuer (`iss`) and the access-token audience. */
  baseUrl: string;
  /** Directory of the embedded database and of generated local secrets. */
  dataDir: string;
  /** PostgreSQL connection string; when set, the embedded database is not used. */
  databaseUrl: string | undefined;
  /** Named prepared statements on PostgreSQL (storage/postgres.ts). */
  databasePreparedStatements: boolean;
  /** Redis connection string; when set, caches, rate limits and invalidation are shared. */
  redisUrl: string | undefined;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  /** Key material that encrypts secrets at rest (AES-256-GCM). Undefined until resolved at start. */
  secretKey: string | undefined;
  /** Hosts or CIDRs that outbound identity-provider calls may reach despite the private-address guard. */
  allowPrivateIdpUrls: string[];
  logLevel: LogLevel;
  /** Whether `X-Forwarded-*` headers are believed (client IP for rate limits, protocol). */
  trustProxy: boolean;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /** Access-token lifetime in seconds. */
  accessTokenLifetime: number;
  /** Refresh-token absolute lifetime in seconds. */
  refreshTokenLifetime: number;
  rateLimit: RateLimitConfig;
}

export interface RateLimitConfig {
  /** Failures allowed per window per IP before 429. */
  failuresPerIp: number;
  /** Failures allowed per window per client or account before 429. */
  failuresPerSubject: number;
  /** Window length in seconds. */
  windowSeconds: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigVariable {
  name: string;
  default: string;
  description: string;
}

/** The documented list of every variable the server reads. Order is the documentation's order. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: 'PORT', default: '8103', description: 'TCP port the server listens on.' },
  {
    name: 'HOST',
    default: 'localhost',
    description: 'Interface to bind. Use `0.0.0.0` in a container.',
  },
  {
    name: 'BASE_URL',
    default: 'http://localhost:$PORT/',
    description:
      'Public URL of the server as browsers and apps reach it (a trailing `/` is added). It is the OAuth issuer and the audience of access tokens, so every instance behind a load balancer must use the same value.',
  },
  {
    name: 'DATA_DIR',
    default: './data',
    description:
      'Directory of the embedded database (PGlite) and of the generated `secret.key` and bootstrap password file. Only one process may use it at a time.',
  },
  {
    name: 'DATABASE_URL',
    default: '(unset)',
    description:
      'PostgreSQL connection string (`postgres://user:pass@host:5432/db`). When set, the embedded database is not used and `SECRET_KEY` is required.',
  },
  {
    name: 'DATABASE_PREPARED_STATEMENTS',
    default: 'true',
    description:
      'With `DATABASE_URL`: send statements as named prepared statements, parsed and planned once per connection instead of on every request (at most 256 per connection). Set to `false` behind a pooler that moves statements between server connections (PgBouncer in transaction mode without `max_prepared_statements`).',
  },
  {
    name: 'REDIS_URL',
    default: '(unset)',
    description:
      'Redis connection string. When set, rate-limit counters, the userinfo cache and revocation notices are shared by every instance. Required for more than one instance.',
  },
  {
    name: 'ADMIN_EMAIL',
    default: 'admin@example.com',
    description: 'E-mail of the super admin created on first start.',
  },
  {
    name: 'ADMIN_PASSWORD',
    default: '(generated)',
    description:
      'Password of the super admin created on first start. When unset, a strong password is generated, printed once on the terminal and kept in `DATA_DIR/admin-password.txt` (mode 0600) until changed.',
  },
  {
    name: 'SECRET_KEY',
    default: '(generated when embedded)',
    description:
      'At least 32 characters of secret key material that encrypts secrets at rest (signing keys, identity-provider client secrets, refresh successors). Required with `DATABASE_URL`, and identical on every instance. Embedded mode generates one into `DATA_DIR/secret.key` with a warning.',
  },
  {
    name: 'ALLOW_PRIVATE_IDP_URLS',
    default: '(empty)',
    description:
      'Comma-separated hosts, IP addresses or CIDRs that outbound identity-provider calls may reach despite the private-address guard (for an IdP on your own network or on loopback during development).',
  },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    description: 'One of fatal, error, warn, info, debug, trace, silent.',
  },
  {
    name: 'TRUST_PROXY',
    default: 'false',
    description:
      'Set to `true` behind a reverse proxy, so that `X-Forwarded-For` and `X-Forwarded-Proto` are believed. Off by default: a client could otherwise choose its own IP for rate limits.',
  },
  {
    name: 'BODY_LIMIT',
    default: '1048576',
    description: 'Largest request body accepted, in bytes; larger bodies answer 413.',
  },
  {
    name: 'ACCESS_TOKEN_LIFETIME',
    default: '3600',
    description:
      'Default access-token lifetime in seconds (at least 300). A ClientApplication may override it.',
  },
  {
    name: 'REFRESH_TOKEN_LIFETIME',
    default: '1209600',
    description: 'Absolute refresh-token lifetime in seconds (default 14 days).',
  },
  {
    name: 'RATE_LIMIT_FAILURES_PER_IP',
    default: '100',
    description: 'Failed authentication attempts (bad credentials, codes, tokens) allowed per IP per window.',
  },
  {
    name: 'RATE_LIMIT_FAILURES_PER_SUBJECT',
    default: '20',
    description: 'Failed attempts allowed per client or account per window.',
  },
  {
    name: 'RATE_LIMIT_WINDOW_SECONDS',
    default: '900',
    description: 'Length of the rate-limit window in seconds.',
  },
];

type Env = Record<string, string | undefined>;

function readString(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = readString(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function readBool(env: Env, name: string, fallback = false): boolean {
  const raw = readString(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === 'false' || raw === '0' || raw === 'no') return false;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function readUrl(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = readString(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${url.protocol}`);
  }
  return raw;
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A host name, an IP address or a CIDR, as ALLOW_PRIVATE_IDP_URLS accepts them. */
function isHostOrCidr(entry: string): boolean {
  const [address, prefix, extra] = entry.split('/');
  if (extra !== undefined || address === undefined) return false;
  if (prefix !== undefined) {
    const family = isIP(address);
    if (family === 0 || !/^\d{1,3}$/.test(prefix)) return false;
    return Number(prefix) <= (family === 4 ? 32 : 128);
  }
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  return isIP(bare) !== 0 || /^[a-z0-9.-]+(:\d+)?$/i.test(bare);
}

/** Reads and validates the configuration. Throws {@link ConfigError} naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const port = readInt(env, 'PORT', 8103, 0, 65535);
  const baseUrlRaw = readUrl(env, 'BASE_URL', ['http:', 'https:']) ?? `http://localhost:${port || 8103}/`;
  const base = new URL(baseUrlRaw);
  if (base.search || base.hash) throw new ConfigError('BASE_URL', 'must not have a query or fragment');
  if (!base.pathname.endsWith('/')) base.pathname += '/';

  const logLevel = (readString(env, 'LOG_LEVEL') ?? 'info').toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  }

  const secretKey = readString(env, 'SECRET_KEY');
  if (secretKey !== undefined && secretKey.length < 32) {
    throw new ConfigError('SECRET_KEY', 'must be at least 32 characters');
  }
  const databaseUrl = readUrl(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  if (databaseUrl && !secretKey) {
    throw new ConfigError(
      'SECRET_KEY',
      'is required when DATABASE_URL is set (every instance must share it); generate one with `openssl rand -base64 48`',
    );
  }

  const allowPrivateIdpUrls = (readString(env, 'ALLOW_PRIVATE_IDP_URLS') ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  for (const entry of allowPrivateIdpUrls) {
    if (!isHostOrCidr(entry)) {
      throw new ConfigError('ALLOW_PRIVATE_IDP_URLS', `"${entry}" is not a host name, IP address or CIDR`);
    }
  }

  const adminEmail = readString(env, 'ADMIN_EMAIL');
  if (adminEmail !== undefined && !/^[^\s@]+@[^\s@]+$/.test(adminEmail)) {
    throw new ConfigError('ADMIN_EMAIL', 'is not an e-mail address');
  }
  const adminPassword = env.ADMIN_PASSWORD;
  if (adminPassword !== undefined && adminPassword !== '' && adminPassword.length < 8) {
    throw new ConfigError('ADMIN_PASSWORD', 'must be at least 8 characters');
  }

  return {
    port,
    host: readString(env, 'HOST') ?? 'localhost',
    baseUrl: base.href,
    dataDir: readString(env, 'DATA_DIR') ?? './data',
    databaseUrl,
    databasePreparedStatements: readBool(env, 'DATABASE_PREPARED_STATEMENTS', true),
    redisUrl: readUrl(env, 'REDIS_URL', ['redis:', 'rediss:']),
    adminEmail,
    adminPassword: adminPassword === '' ? undefined : adminPassword,
    secretKey,
    allowPrivateIdpUrls,
    logLevel,
    trustProxy: readBool(env, 'TRUST_PROXY'),
    bodyLimit: readInt(env, 'BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    accessTokenLifetime: readInt(env, 'ACCESS_TOKEN_LIFETIME', 3600, 300, 86400),
    refreshTokenLifetime: readInt(env, 'REFRESH_TOKEN_LIFETIME', 14 * 86400, 300, 365 * 86400),
    rateLimit: {
      failuresPerIp: readInt(env, 'RATE_LIMIT_FAILURES_PER_IP', 100, 1, 1_000_000),
      failuresPerSubject: readInt(env, 'RATE_LIMIT_FAILURES_PER_SUBJECT', 20, 1, 1_000_000),
      windowSeconds: readInt(env, 'RATE_LIMIT_WINDOW_SECONDS', 900, 1, 86400),
    },
  };
}
