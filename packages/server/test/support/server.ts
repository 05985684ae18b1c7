import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { ProjectMembership } from '../../src/model/types.ts';
import { bootstrap } from '../../src/services/bootstrap.ts';
import { createServices, type Services } from '../../src/services/container.ts';
import { createTestDatabase, type Engine, type TestDatabase } from './db.ts';

export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'correct horse battery staple';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface TestServer {
  baseUrl: string;
  services: Services;
  app: FastifyInstance;
  database: TestDatabase;
  /** The super admin's membership (bootstrap). */
  adminMembership: ProjectMembership;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Configuration variables over the test defaults. */
  env?: Record<string, string>;
  /** SECRET_KEY; instances sharing one database must share it. Default: a fresh random key. */
  secretKey?: string;
  /** A logger for the app (default: none). */
  logger?: FastifyInstance['log'];
}

/**
 * A real fedhir listening on 127.0.0.1 (a free port) on the given database: configuration,
 * services, bootstrap, app — the way `main.ts` starts one. `close()` stops it and drops the
 * database (the caller passes a no-op `drop` for a database it shares).
 */
export async function startServerOn(database: TestDatabase, options: StartOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    BASE_URL: `http://127.0.0.1:${port}/`,
    LOG_LEVEL: 'silent',
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ...options.env,
  });
  const services = await createServices(
    config,
    database.db,
    options.secretKey ?? randomBytes(32).toString('base64url'),
  );
  await bootstrap(database.db, services.repo, {
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
    dataDir: undefined,
  });
  const app = await buildApp(services, { logger: options.logger ?? false });
  await app.listen({ port, host: '127.0.0.1' });
  const adminUser = await services.repo.findUserByEmail(ADMIN_EMAIL);
  const [adminMembership] = await services.repo.findMemberships(`User/${adminUser?.id}`);
  if (!adminMembership) throw new Error('bootstrap made no admin membership');
  return {
    baseUrl: config.baseUrl,
    services,
    app,
    database,
    adminMembership,
    async close() {
      await app.close();
      await services.close();
      await database.drop();
    },
  };
}

/** A real fedhir on a fresh database of the given engine; `env` overrides configuration variables. */
export async function startServer(engine: Engine, env: Record<string, string> = {}): Promise<TestServer> {
  return startServerOn(await createTestDatabase(engine), { env });
}

/**
 * An access token for a membership, minted through the server's own LoginStore and TokenService
 * (the same path every grant takes), for tests whose subject is not sign-in itself.
 */
export async function tokenForMembership(services: Services, membership: ProjectMembership): Promise<string> {
  const { login } = await services.logins.create({
    userRef: membership.user.reference,
    membershipId: membership.id,
    projectId: membership.project.reference.replace('Project/', ''),
    profileRef: membership.profile.reference,
    scope: 'openid',
    authMethod: 'password',
  });
  const issued = await services.tokens.signAccessToken(
    { sub: membership.user.reference.split('/')[1] ?? '', login_id: login.id, scope: 'openid' },
    3600,
  );
  return issued.token;
}

/** JSON request helper against a test server. */
export async function call(
  server: { baseUrl: string },
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests assert response bodies field by field
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const response = await fetch(new URL(path, server.baseUrl), {
    method,
    headers,
    body:
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body };
}
