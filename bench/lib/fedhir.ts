/**
 * The fedhir server under test, started once per run (ctx.shared) with the fixtures every fedhir
 * case needs, all created through the public API: a project, a confidential client, a user that the
 * loopback IdP vouches for, identity providers for the userinfo and jwks paths, a Patient, and a
 * signed-in access token.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { build } from '../../packages/server/scripts/build.mjs';
import { parseStartScript, startCommand } from '../../packages/server/scripts/start-command.mjs';
import type { CaseContext, FedhirVariant } from './case.ts';
import { seedGrants } from './seed-grants.ts';
import type { Child } from './spawn.ts';

export interface Fedhir {
  server: Child;
  /** Seeded single-use authorization codes (PKCE verifier {@link CODE_VERIFIER}) and refresh tokens. */
  codes: string[];
  refreshTokens: string[];
  idp: Child;
  /** Confidential client whose identity provider is verified with userinfo. */
  client: { id: string; secret: string };
  /** Client whose identity provider is verified locally (jwks, audience `fedhir-bench-api`). */
  jwksClient: { id: string };
  patientId: string;
  /** Access token of user1 (bearer cases). */
  userToken: string;
}

export const JWKS_AUDIENCE = 'fedhir-bench-api';
export const CODE_VERIFIER = 'bench-code-verifier-0123456789-0123456789-0123456789';
const ADMIN_EMAIL = 'admin@bench.example';
const ADMIN_PASSWORD = 'bench-admin-password-0123456789';
const USER_PASSWORD = 'bench-user1-password';

async function api(origin: string, method: string, path: string, body?: unknown, token?: string) {
  const response = await fetch(`${origin}${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** E-mail/password sign-in through /auth/login + the code grant, as @medplum/core does it. */
async function signIn(origin: string, email: string, password: string, projectId?: string): Promise<string> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const login = await api(origin, 'POST', '/auth/login', {
    email,
    password,
    projectId,
    codeChallenge: challenge,
    codeChallengeMethod: 'S256',
  });
  let code = login.code;
  const memberships = login.memberships as { id: string }[] | undefined;
  if (code === undefined && memberships?.[0]) {
    // A PostgreSQL database kept from an earlier run (BENCH_DATABASE_URL): the admin is a member of
    // every project those runs made, so sign-in asks which (protocol.md §2). Any one serves a super
    // admin, who creates this run's project next.
    code = (await api(origin, 'POST', '/auth/profile', { login: login.login, profile: memberships[0].id }))
      .code;
  }
  const response = await fetch(`${origin}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: String(code),
      code_verifier: verifier,
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const tokens = (await response.json()) as { access_token?: string };
  if (!tokens.access_token) throw new Error(`sign-in failed: ${JSON.stringify(tokens)}`);
  return tokens.access_token;
}

/**
 * What to start: this checkout's server as `npm start` runs it (built first), or an A/B variant's
 * (its Node flags and variables added; another checkout built with its own build script).
 */
async function serverCommand(repoRoot: string, variant: FedhirVariant | undefined) {
  const root = variant?.root ? path.resolve(variant.root) : repoRoot;
  const serverDir = path.join(root, 'packages', 'server');
  let command: { env: Record<string, string>; args: string[] };
  if (root === repoRoot) {
    await build();
    command = startCommand();
  } else {
    execFileSync(process.execPath, [path.join(serverDir, 'scripts', 'build.mjs')], {
      cwd: serverDir,
      stdio: 'inherit',
    });
    const manifest = JSON.parse(readFileSync(path.join(serverDir, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    command = parseStartScript(manifest.scripts.start);
  }
  return {
    file: path.join(serverDir, command.args.at(-1) ?? 'dist/main.js'),
    nodeArgs: [...command.args.slice(0, -1), ...(variant?.nodeArgs ?? [])],
    env: command.env,
  };
}

/** The run-wide key (`ctx.shared`) of the fedhir server of `variant`, or of the one server of a run. */
export function fedhirSharedKey(variant: FedhirVariant | undefined): string {
  return variant ? `fedhir:${variant.name}` : 'fedhir';
}

export function fedhirServer(ctx: CaseContext): Promise<Fedhir> {
  const variant = ctx.variant;
  return ctx.shared<Fedhir>(fedhirSharedKey(variant), async (sctx) => {
    const idp = await sctx.spawnRef('userinfo-server');
    const port = await sctx.freePort();
    const origin = `http://127.0.0.1:${port}`;
    const dataDir = sctx.tempDir('fedhir-data-');
    // What `npm start` runs: the bundle of the current sources, with the same variables and Node flags.
    const command = await serverCommand(sctx.repoRoot, variant);
    const start = () =>
      sctx.spawn(command.file, {
        nodeArgs: command.nodeArgs,
        name: fedhirSharedKey(variant),
        env: {
          ...command.env,
          PORT: String(port),
          HOST: '127.0.0.1',
          BASE_URL: `${origin}/`,
          DATA_DIR: dataDir,
          DATABASE_URL: sctx.databaseUrl,
          REDIS_URL: sctx.redisUrl,
          SECRET_KEY: sctx.databaseUrl ? 'bench-secret-key-0123456789-0123456789-0123' : undefined,
          LOG_LEVEL: 'warn',
          ADMIN_EMAIL,
          ADMIN_PASSWORD,
          ALLOW_PRIVATE_IDP_URLS: '127.0.0.1',
          ...variant?.env,
        },
        readyUrl: `${origin}/healthcheck`,
        readyTimeoutMs: 60_000,
      });
    let server = await start();

    const superToken = await signIn(origin, ADMIN_EMAIL, ADMIN_PASSWORD);
    const project = await api(origin, 'POST', '/admin/projects', { name: `Bench ${Date.now()}` }, superToken);
    const projectId = String(project.id);
    const invite = (email: string, admin: boolean, password: string) =>
      api(
        origin,
        'POST',
        `/admin/projects/${projectId}/invite`,
        {
          resourceType: 'Practitioner',
          firstName: email.split('@')[0],
          lastName: 'Bench',
          email,
          password,
          admin,
        },
        superToken,
      );
    await invite('benchadmin@bench.example', true, ADMIN_PASSWORD);
    await invite('user1@bench.example', false, USER_PASSWORD);
    const adminToken = await signIn(origin, 'benchadmin@bench.example', ADMIN_PASSWORD, projectId);

    const newClient = async (name: string, identityProvider: Record<string, unknown>) => {
      const created = await api(origin, 'POST', `/admin/projects/${projectId}/client`, { name }, superToken);
      const id = String(created.id);
      const stored = await api(origin, 'GET', `/fhir/R4/ClientApplication/${id}`, undefined, adminToken);
      await api(
        origin,
        'PUT',
        `/fhir/R4/ClientApplication/${id}`,
        { ...stored, identityProvider },
        adminToken,
      );
      return { id, secret: String(created.secret) };
    };
    const client = await newClient('bench userinfo', {
      userInfoUrl: `${idp.origin}/userinfo`,
      clientId: 'bench-ext',
    });
    const jwksClient = await newClient('bench jwks', {
      issuer: idp.origin,
      audience: JWKS_AUDIENCE,
      clientId: 'bench-ext',
      tokenVerificationMethod: 'jwks',
    });

    const userToken = await signIn(origin, 'user1@bench.example', USER_PASSWORD, projectId);
    const patient = await api(
      origin,
      'POST',
      '/fhir/R4/Patient',
      { resourceType: 'Patient', name: [{ given: ['Bench'], family: 'Patient' }] },
      userToken,
    );
    const me = (await api(origin, 'GET', '/auth/me', undefined, userToken)) as {
      membership: { id: string; user: { reference: string }; profile: { reference: string } };
    };
    await server.stop();
    const seeded = await seedGrants({
      dataDir,
      databaseUrl: sctx.databaseUrl,
      userRef: me.membership.user.reference,
      membershipId: me.membership.id,
      projectId,
      profileRef: me.membership.profile.reference,
      codeChallenge: createHash('sha256').update(CODE_VERIFIER).digest('base64url'),
      count: sctx.quick ? 20_000 : 120_000,
    });
    server = await start();
    return {
      server,
      idp,
      client,
      jwksClient: { id: jwksClient.id },
      patientId: String(patient.id),
      userToken,
      ...seeded,
    };
  });
}
