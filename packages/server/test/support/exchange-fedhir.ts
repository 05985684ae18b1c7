/**
 * fedhir-side helpers for the token-exchange tests: clients with an identity provider, configured
 * the way an administrator does it (admin API + `PUT /fhir/R4/ClientApplication/:id`), users invited
 * through the admin API, and the exchange request itself.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loggerOptions } from '../../src/http/logger.ts';
import type { ClientApplication, IdentityProvider, ProjectMembership } from '../../src/model/types.ts';
import { createPostgresDb } from '../../src/storage/postgres.ts';
import { createTestDatabase, type Engine } from './db.ts';
import { basic, type ProjectFixture, postForm, updateClient } from './fixtures.ts';
import { call, startServerOn, type TestServer, tokenForMembership } from './server.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/**
 * Configuration every exchange test starts fedhir with: the loopback peers are allowed (only
 * 127.0.0.1: 127.0.0.2 and [::1] stay blocked), and the failure budgets are out of the way (TX-31
 * starts its own server with small ones).
 */
export const EXCHANGE_ENV: Record<string, string> = {
  ALLOW_PRIVATE_IDP_URLS: '127.0.0.1',
  RATE_LIMIT_FAILURES_PER_IP: '1000000',
  RATE_LIMIT_FAILURES_PER_SUBJECT: '1000000',
};

export type ClientSettings = Partial<Pick<ClientApplication, 'publicExchange' | 'grantType' | 'status'>>;

export interface ExchangeClient {
  id: string;
  secret: string;
}

export { updateClient };

/** A new client of the fixture's project whose identity provider (and settings) the admin sets. */
export async function exchangeClient(
  server: TestServer,
  fx: ProjectFixture,
  identityProvider: IdentityProvider | undefined,
  settings: ClientSettings = {},
): Promise<ExchangeClient> {
  const superToken = await tokenForMembership(server.services, server.adminMembership);
  const created = await call(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
    token: superToken,
    body: { name: `exchange ${randomBytes(3).toString('hex')}` },
  });
  if (created.status !== 201) throw new Error(`client: ${created.status} ${JSON.stringify(created.body)}`);
  const put = await updateClient(server, fx, created.body.id, { identityProvider, ...settings });
  if (put.status !== 200) throw new Error(`PUT client: ${put.status} ${JSON.stringify(put.body)}`);
  return { id: created.body.id, secret: created.body.secret };
}

/** Invites a user into the fixture's project (a new membership; an existing e-mail is attached). */
export async function invite(
  server: TestServer,
  fx: ProjectFixture,
  user: { email?: string; externalId?: string; resourceType?: 'Practitioner' | 'Patient' },
): Promise<ProjectMembership> {
  const superToken = await tokenForMembership(server.services, server.adminMembership);
  const response = await call(server, 'POST', `/admin/projects/${fx.project.id}/invite`, {
    token: superToken,
    body: {
      resourceType: user.resourceType ?? 'Practitioner',
      firstName: 'Ext',
      lastName: 'User',
      ...(user.email ? { email: user.email } : {}),
      ...(user.externalId ? { externalId: user.externalId } : {}),
    },
  });
  if (response.status !== 201) throw new Error(`invite: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as ProjectMembership;
}

/** A fresh e-mail address. */
export function newEmail(prefix = 'ext'): string {
  return `${prefix}.${randomBytes(5).toString('hex')}@example.com`;
}

/** POST /oauth2/token with the token-exchange grant; `form` adds or overrides parameters. */
export function exchange(
  server: { baseUrl: string },
  clientId: string | undefined,
  subjectToken: string | undefined,
  form: Record<string, string | undefined> = {},
  headers: Record<string, string> = {},
) {
  const body: Record<string, string> = {};
  for (const [key, value] of Object.entries({
    grant_type: TOKEN_EXCHANGE,
    subject_token_type: ACCESS_TOKEN_TYPE,
    client_id: clientId,
    subject_token: subjectToken,
    ...form,
  })) {
    if (value !== undefined) body[key] = value;
  }
  return postForm(server, '/oauth2/token', body, headers);
}

export { basic };

/**
 * A fedhir instance on an existing PostgreSQL database, optionally with Redis, built the way
 * `startServer` builds one — for tests that need several instances sharing storage (they must share
 * SECRET_KEY as well).
 */
export async function startSharedInstance(options: {
  databaseUrl: string;
  redisUrl?: string;
  secretKey: string;
  env?: Record<string, string>;
}): Promise<TestServer> {
  // The database belongs to the caller, which drops it after every instance has closed.
  const db = createPostgresDb(options.databaseUrl, { max: 5 });
  return startServerOn(
    { db, url: options.databaseUrl, drop: async () => {} },
    {
      secretKey: options.secretKey,
      env: {
        DATABASE_URL: options.databaseUrl,
        SECRET_KEY: options.secretKey,
        ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
        ...EXCHANGE_ENV,
        ...options.env,
      },
    },
  );
}

/**
 * `startServer` with the production logger configuration at level `trace`, writing into `logs`, so a
 * test can scan everything the server logged (TX-32: no subject token, no upstream body).
 */
export async function startLoggedServer(
  engine: Engine,
  env: Record<string, string> = {},
): Promise<TestServer & { logs: string[] }> {
  const logs: string[] = [];
  const logger = pino(loggerOptions('trace') as pino.LoggerOptions, {
    write(line: string) {
      logs.push(line);
    },
  });
  const server = await startServerOn(await createTestDatabase(engine), {
    env: { LOG_LEVEL: 'trace', ...EXCHANGE_ENV, ...env },
    logger: logger as unknown as FastifyInstance['log'],
  });
  return { ...server, logs };
}
