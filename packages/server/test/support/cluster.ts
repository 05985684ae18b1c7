/**
 * Helpers of the reliability tests (test/reliability):
 *
 * - {@link startCluster}: N real `src/main.ts` processes as `npm start` runs them, on one storage
 *   (PostgreSQL, or the embedded engine for a single process) and optionally one Redis, sharing one
 *   BASE_URL and SECRET_KEY as instances behind a load balancer do (architecture.md "Runtime modes").
 * - HTTP helpers that talk to such processes only over the wire (no in-process service), with every
 *   request bounded by an `AbortSignal.timeout` so that a hang fails the test instead of stalling it.
 * - {@link startPrivatePostgres}: a private PostgreSQL cluster (initdb + pg_ctl in a temp dir) that a
 *   test may stop and start; the machine's shared cluster is never touched.
 * - {@link assertCleanBody}: the RB-14 check that an answer carries no stack trace or file path.
 * - {@link checkProperty}: fast-check runs whose seed is always reported and can be replayed with
 *   `FC_SEED=<seed> FC_PATH=<path>`.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import type { ClientApplication, Project, ProjectMembership } from '../../src/model/types.ts';
import type { Engine } from './db.ts';
import { updateClient } from './exchange-fedhir.ts';
import { createProjectFixture, type ProjectFixture } from './fixtures.ts';
import { NO_FAILURE_LIMITS, type Pkce, pkcePair } from './oauth-flows.ts';
import { type ServerProcess, spawnServer, stop, waitHealthy } from './process.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort, startServer, type TestServer } from './server.ts';

const run = promisify(execFile);

/** Every request of these tests gives up after this long: a hang is a failure, never a stall. */
export const REQUEST_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests assert response bodies field by field
  body: any;
}

export interface HttpOptions {
  token?: string;
  /** A JSON body (sent as application/json unless `headers` names another type). */
  json?: unknown;
  /** A form body (application/x-www-form-urlencoded). */
  form?: Record<string, string> | URLSearchParams;
  /** A raw body, sent as is. */
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
  timeoutMs?: number;
  redirect?: 'manual' | 'follow';
}

/** One request to a node, bounded in time; the body is read as text and parsed when it is JSON. */
export async function http(
  base: string | { url: string } | { baseUrl: string },
  method: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpResult> {
  const root = typeof base === 'string' ? base : 'url' in base ? base.url : base.baseUrl;
  const headers: Record<string, string> = {};
  let body: string | Uint8Array | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  } else if (options.raw !== undefined) {
    body = options.raw;
  }
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  Object.assign(headers, options.headers);
  const response = await fetch(new URL(path, root), {
    method,
    headers,
    ...(body !== undefined ? { body: body as BodyInit } : {}),
    redirect: options.redirect ?? 'manual',
    signal: AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** `assert.equal(status, …)` with the body in the message. */
export function expectStatus(result: HttpResult, status: number, context = ''): void {
  assert.equal(result.status, status, `${context} → ${result.status} ${result.text.slice(0, 500)}`);
}

// ---------------------------------------------------------------------------------------------------
// Sign-in over the wire
// ---------------------------------------------------------------------------------------------------

export interface SignInOptions {
  email: string;
  password: string;
  clientId?: string;
  projectId?: string;
  scope?: string;
}

/** POST /auth/login with a fresh PKCE pair: the code (not redeemed) and its verifier. */
export async function loginCode(
  base: string | { url: string },
  options: SignInOptions,
): Promise<{ code: string; login: string; pkce: Pkce }> {
  const pkce = pkcePair();
  const response = await http(base, 'POST', '/auth/login', {
    json: {
      email: options.email,
      password: options.password,
      ...(options.clientId ? { clientId: options.clientId } : {}),
      ...(options.projectId ? { projectId: options.projectId } : {}),
      ...(options.scope ? { scope: options.scope } : {}),
      codeChallenge: pkce.challenge,
      codeChallengeMethod: 'S256',
    },
  });
  if (response.status !== 200 || typeof response.body?.code !== 'string') {
    throw new Error(`/auth/login failed (${response.status}): ${response.text}`);
  }
  return { code: response.body.code, login: response.body.login, pkce };
}

/** POST /oauth2/token grant_type=authorization_code for a code from {@link loginCode}. */
export function redeemCode(
  base: string | { url: string },
  code: { code: string; pkce: Pkce },
  clientId?: string,
): Promise<HttpResult> {
  return http(base, 'POST', '/oauth2/token', {
    form: {
      grant_type: 'authorization_code',
      code: code.code,
      code_verifier: code.pkce.verifier,
      ...(clientId ? { client_id: clientId } : {}),
    },
  });
}

/** POST /oauth2/token grant_type=refresh_token. */
export function refreshGrant(
  base: string | { url: string },
  refreshToken: string,
  extra: Record<string, string> = {},
): Promise<HttpResult> {
  return http(base, 'POST', '/oauth2/token', {
    form: { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra },
  });
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  expires_in: number;
  scope: string;
}

/** Signs in and redeems the code on `base` (or on `redeemAt`): a complete token response. */
export async function signIn(
  base: string | { url: string },
  options: SignInOptions,
  redeemAt: string | { url: string } = base,
): Promise<TokenSet> {
  const code = await loginCode(base, options);
  const response = await redeemCode(redeemAt, code, options.clientId);
  if (response.status !== 200) throw new Error(`token failed (${response.status}): ${response.text}`);
  return response.body as TokenSet;
}

const superTokens = new Map<string, string>();

/**
 * The bootstrap super admin's access token (its sessions get no refresh token, protocol.md §5),
 * cached per server. The super admin becomes a member of every project it creates, so a later
 * sign-in offers several memberships: the one whose project is the super-admin project is chosen.
 */
export async function superAdminToken(base: string | { url: string }): Promise<string> {
  const root = typeof base === 'string' ? base : base.url;
  const cached = superTokens.get(root);
  if (cached) return cached;
  const pkce = pkcePair();
  const login = () =>
    http(root, 'POST', '/auth/login', {
      json: {
        email: ADMIN_EMAIL,
        password: ADMIN_PASSWORD,
        codeChallenge: pkce.challenge,
        codeChallengeMethod: 'S256',
      },
    });
  const redeem = async (code: string) => {
    const tokens = await redeemCode(root, { code, pkce });
    expectStatus(tokens, 200, 'super admin token');
    return tokens.body.access_token as string;
  };
  const started = await login();
  expectStatus(started, 200, 'super admin sign-in');
  let token: string | undefined;
  if (typeof started.body.code === 'string') {
    token = await redeem(started.body.code);
  } else {
    for (const membership of started.body.memberships as { id: string }[]) {
      const again = await login();
      const chosen = await http(root, 'POST', '/auth/profile', {
        json: { login: again.body.login, profile: membership.id },
      });
      expectStatus(chosen, 200, 'super admin membership');
      const candidate = await redeem(chosen.body.code);
      if ((await http(root, 'GET', '/auth/me', { token: candidate })).body?.project?.superAdmin === true) {
        token = candidate;
        break;
      }
    }
  }
  if (!token) throw new Error('no super-admin membership found');
  superTokens.set(root, token);
  return token;
}

let fixtures = 0;

/**
 * `createProjectFixture` over the wire: a project, an admin with a password (signed in for real: its
 * token comes from /auth/login and /oauth2/token), and a confidential client.
 */
export async function httpProjectFixture(
  base: string | { url: string },
  superToken: string,
  options: { redirectUris?: string[] } = {},
): Promise<ProjectFixture> {
  fixtures++;
  const tag = `${fixtures}-${randomBytes(3).toString('hex')}`;
  const project = await http(base, 'POST', '/admin/projects', {
    token: superToken,
    json: { name: `Reliability ${tag}` },
  });
  expectStatus(project, 201, 'create project');
  const email = `admin.${tag}@example.com`;
  const password = `pw-${tag}-long-enough`;
  const invited = await http(base, 'POST', `/admin/projects/${project.body.id}/invite`, {
    token: superToken,
    json: {
      resourceType: 'Practitioner',
      firstName: 'Ada',
      lastName: `Admin${tag}`,
      email,
      password,
      admin: true,
    },
  });
  expectStatus(invited, 201, 'invite admin');
  const client = await http(base, 'POST', `/admin/projects/${project.body.id}/client`, {
    token: superToken,
    json: {
      name: `Client ${tag}`,
      redirectUris: options.redirectUris ?? ['https://app.example.com/callback'],
    },
  });
  expectStatus(client, 201, 'create client');
  const token = (await signIn(base, { email, password, projectId: project.body.id })).access_token;
  return {
    project: project.body as Project,
    admin: { email, password, membership: invited.body as ProjectMembership, token },
    client: client.body as ClientApplication & { secret: string },
  };
}

/** Invites a password user into a project (admin API); answers its credentials and membership. */
export async function httpInvite(
  base: string | { url: string },
  adminToken: string,
  projectId: string,
  user: { email: string; password?: string },
): Promise<{ email: string; password: string; membership: ProjectMembership }> {
  const password = user.password ?? `pw-${randomBytes(6).toString('hex')}-long`;
  const invited = await http(base, 'POST', `/admin/projects/${projectId}/invite`, {
    token: adminToken,
    json: { resourceType: 'Practitioner', firstName: 'Test', lastName: 'User', email: user.email, password },
  });
  expectStatus(invited, 201, `invite ${user.email}`);
  return { email: user.email, password, membership: invited.body };
}

/** Read-modify-write of a ClientApplication by a project admin (`PUT /fhir/R4/ClientApplication/:id`). */
export async function httpUpdateClient(
  base: string | { url: string },
  adminToken: string,
  clientId: string,
  patch: Record<string, unknown>,
): Promise<HttpResult> {
  const stored = await http(base, 'GET', `/fhir/R4/ClientApplication/${clientId}`, { token: adminToken });
  expectStatus(stored, 200, 'read client');
  return http(base, 'PUT', `/fhir/R4/ClientApplication/${clientId}`, {
    token: adminToken,
    json: { ...stored.body, ...patch },
  });
}

// ---------------------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------------------

export interface ClusterNode {
  index: number;
  port: number;
  /** This process's own address (`http://127.0.0.1:<port>/`); BASE_URL is shared by all nodes. */
  url: string;
  env: Record<string, string>;
  proc: ServerProcess;
}

export interface ClusterOptions {
  /** Number of processes (default 1; several need `databaseUrl`). */
  instances?: number;
  /** PostgreSQL; without it the single process uses the embedded engine under its DATA_DIR. */
  databaseUrl?: string;
  redisUrl?: string;
  /** Extra environment for every process. */
  env?: Record<string, string>;
}

export interface Cluster {
  nodes: ClusterNode[];
  /** The shared BASE_URL (the issuer and audience of every token; node 0's address). */
  baseUrl: string;
  /** Sends `signal` (default SIGKILL) to one node and waits for it to exit. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a node again with its environment (same port, DATA_DIR, keys) and waits until healthy. */
  restart(index: number): Promise<void>;
  /** Everything a node wrote to stdout and stderr, across restarts. */
  output(index: number): string;
  /** Stops every node (SIGTERM, then SIGKILL after 10 s) and removes the temp directories. */
  close(): Promise<void>;
}

const tempDirs = new Set<string>();

/** A private temp directory, removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'fedhir-rel-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDirs(dirs: Iterable<string>): void {
  for (const dir of dirs) {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

async function stopBounded(proc: ServerProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
  try {
    await stop(proc);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts `instances` server processes and waits until every one answers /healthcheck. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.instances ?? 1;
  if (count > 1 && !options.databaseUrl) throw new Error('several instances need PostgreSQL');
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const baseUrl = `http://127.0.0.1:${ports[0]}/`;
  const secretKey = randomBytes(36).toString('base64url');
  const dirs: string[] = [];
  const outputs: string[] = ports.map(() => '');
  const nodes: ClusterNode[] = ports.map((port, index) => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const env: Record<string, string> = {
      PORT: String(port),
      BASE_URL: baseUrl,
      DATA_DIR: dataDir,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      LOG_LEVEL: 'warn',
      ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl, SECRET_KEY: secretKey } : {}),
      ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
      ...options.env,
    };
    return { index, port, url: `http://127.0.0.1:${port}/`, env, proc: spawnServer(env) };
  });
  const cluster: Cluster = {
    nodes,
    baseUrl,
    async kill(index, signal = 'SIGKILL') {
      const node = nodes[index] as ClusterNode;
      if (node.proc.child.exitCode !== null || node.proc.child.signalCode !== null) return;
      node.proc.child.kill(signal);
      await node.proc.exited;
    },
    async restart(index) {
      const node = nodes[index] as ClusterNode;
      outputs[index] += node.proc.output();
      await stopBounded(node.proc);
      node.proc = spawnServer(node.env);
      await waitHealthy(node.url, node.proc, 60_000);
    },
    output(index) {
      return (outputs[index] ?? '') + (nodes[index]?.proc.output() ?? '');
    },
    async close() {
      await Promise.all(nodes.map((node) => stopBounded(node.proc)));
      removeTempDirs(dirs);
    },
  };
  try {
    await Promise.all(nodes.map((node) => waitHealthy(node.url, node.proc, 60_000)));
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** Polls `probe` every `intervalMs` until it answers true or `timeoutMs` passes; answers whether it did. */
export async function eventually(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---------------------------------------------------------------------------------------------------
// A private PostgreSQL cluster
// ---------------------------------------------------------------------------------------------------

export interface PrivatePostgres {
  url: string;
  port: number;
  /** `pg_ctl stop -m fast`: disconnects every client, as a restart of the database does. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it (if running) and removes its directory. */
  destroy(): Promise<void>;
}

function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

function postgresAccount(): { uid: number; gid: number } | undefined {
  try {
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
    if (!line) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/**
 * A PostgreSQL of its own for a test: `initdb` into a temp dir and `pg_ctl start` on a free port,
 * listening on 127.0.0.1 only, trust auth. initdb refuses to run as root, so as root it runs as the
 * `postgres` OS user (`runuser`) in a directory that user owns. Answers `{ skip }` with a reason when
 * that is not possible on this machine.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres | { skip: string }> {
  const bin = postgresBinDir();
  if (!bin) return { skip: 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin' };
  const root = process.getuid?.() === 0;
  const account = root ? postgresAccount() : undefined;
  if (root && !account) return { skip: 'running as root and there is no postgres OS user for initdb' };
  if (
    root &&
    !existsSync('/usr/sbin/runuser') &&
    !existsSync('/sbin/runuser') &&
    !existsSync('/usr/bin/runuser')
  ) {
    return { skip: 'running as root and runuser is not available for initdb' };
  }
  const dir = mkdtempSync(join(tmpdir(), 'fedhir-pg-'));
  if (account) chownSync(dir, account.uid, account.gid);
  const data = join(dir, 'data');
  const port = await freePort();
  const exec = (tool: string, args: string[]) =>
    root
      ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { timeout: 60_000, cwd: dir })
      : run(join(bin, tool), args, { timeout: 60_000, cwd: dir });
  try {
    await exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `initdb failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  let running = false;
  const pg: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await exec('pg_ctl', [
        '-D',
        data,
        '-l',
        join(dir, 'postgres.log'),
        '-w',
        '-t',
        '60',
        '-o',
        options,
        'start',
      ]);
      running = true;
    },
    async stop() {
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await pg.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // A test run that ends without calling destroy() (a crash, a filtered run) must not leave a
  // PostgreSQL running or its files behind.
  const emergencyStop = () => {
    if (running) {
      const argv = [join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'];
      if (root) spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { timeout: 30_000 });
      else spawnSync(argv[0] as string, argv.slice(1), { timeout: 30_000 });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', emergencyStop);
  const destroy = pg.destroy;
  pg.destroy = async () => {
    process.removeListener('exit', emergencyStop);
    await destroy();
  };
  try {
    await pg.start();
  } catch (err) {
    await pg.destroy();
    return { skip: `pg_ctl start failed: ${(err as Error).message.split('\n')[0]}` };
  }
  return pg;
}

// ---------------------------------------------------------------------------------------------------
// Answers that leak nothing (RB-14)
// ---------------------------------------------------------------------------------------------------

/** A stack frame line (`    at fn (file:…)`) or an absolute source path. */
const STACK_LINE = /(^|\n|\\n)\s+at\s/;
const SOURCE_PATH =
  /(file:\/\/|\/(work|home|root|usr|opt|tmp|src|app|node_modules)\/[^\s"'<>]*\.(ts|js|mjs|cjs)\b|node_modules|\.ts:\d+:\d+)/;

/** Fails when `text` (a response body) carries a stack trace or a file path (RB-14, ASVS 16.5.1). */
export function assertCleanBody(text: string, context: string): void {
  assert.doesNotMatch(text, STACK_LINE, `${context}: a stack trace in the answer: ${text.slice(0, 300)}`);
  assert.doesNotMatch(text, SOURCE_PATH, `${context}: a file path in the answer: ${text.slice(0, 300)}`);
}

/** True when `text` carries a stack trace or a file path (for collecting, then asserting once). */
export function leaks(text: string): boolean {
  return STACK_LINE.test(text) || SOURCE_PATH.test(text);
}

// ---------------------------------------------------------------------------------------------------
// fast-check with a replayable seed
// ---------------------------------------------------------------------------------------------------

/**
 * Runs an async property `numRuns` times. The seed is random unless `FC_SEED` is set (and `FC_PATH`
 * narrows a replay to the failing case); it is reported through `diagnostic` on every run, and a
 * failure's message starts with the exact command line that replays it.
 */
export async function checkProperty<T>(
  name: string,
  property: fc.IAsyncPropertyWithHooks<T>,
  numRuns: number,
  diagnostic: (message: string) => void = () => {},
): Promise<void> {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : randomBytes(4).readInt32LE(0);
  const path = process.env.FC_PATH;
  diagnostic(`${name}: seed ${seed}${path ? ` path ${path}` : ''}, ${numRuns} runs`);
  const details = await fc.check(property, {
    numRuns,
    seed,
    ...(path ? { path } : {}),
    // Shrinking replays requests: bound it, a failure must still be reported in reasonable time.
    interruptAfterTimeLimit: 120_000,
    markInterruptAsFailure: true,
  });
  if (details.failed) {
    const replay = `FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ''}`;
    // Counterexamples may hold 70 KB strings: show each value shortened, the error in full.
    const shown = JSON.stringify(details.counterexample, (_key, value: unknown) =>
      typeof value === 'string' && value.length > 300
        ? `${value.slice(0, 300)}…(${value.length} chars)`
        : value,
    );
    const error =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(
      `${name} failed after ${details.numRuns} runs (shrunk ${details.numShrinks} times) — replay with: ` +
        `${replay} node --import tsx --test <this file>\ncounterexample: ${shown?.slice(0, 4000)}\nerror: ${error.slice(0, 4000)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// A loopback identity provider that refuses everything
// ---------------------------------------------------------------------------------------------------

export interface RefusingIdp {
  /** `http://127.0.0.1:<port>`; `/authorize`, `/token`, `/userinfo` are its endpoints. */
  url: string;
  /** Requests received, by path. */
  calls: Record<string, number>;
  close(): Promise<void>;
}

/**
 * An identity provider on 127.0.0.1 that refuses quickly — `invalid_grant` at `/token`, 401 at
 * `/userinfo` and everywhere else — so that fuzzed requests that reach a provider stay on the machine,
 * bounded, and never sign anyone in.
 */
export async function startRefusingIdp(): Promise<RefusingIdp> {
  const calls: Record<string, number> = {};
  const server = createServer((req, res) => {
    req.resume();
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    calls[path] = (calls[path] ?? 0) + 1;
    if (path === '/token') {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":"invalid_grant"}');
      return;
    }
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': 'Bearer error="invalid_token"',
    });
    res.end('{"error":"invalid_token"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The fuzz tests' server: fedhir on `engine` without failure limits, a project whose clients may
 * redirect to `redirectUri`, and a client whose identity provider is a {@link startRefusingIdp} —
 * so fuzzed requests that reach a provider stay on 127.0.0.1 and never sign anyone in.
 */
export async function startFuzzTarget(
  engine: Engine,
  redirectUri: string,
  clientName: string,
): Promise<{ server: TestServer; fx: ProjectFixture; idp: RefusingIdp; idpClientId: string }> {
  const idp = await startRefusingIdp();
  const server = await startServer(engine, { ...NO_FAILURE_LIMITS, ALLOW_PRIVATE_IDP_URLS: '127.0.0.1' });
  const fx = await createProjectFixture(server, { redirectUris: [redirectUri] });
  const created = await http(server, 'POST', `/admin/projects/${fx.project.id}/client`, {
    token: fx.admin.token,
    json: { name: clientName, redirectUris: [redirectUri] },
  });
  const idpClientId = String(created.body.id);
  const put = await updateClient(server, fx, idpClientId, {
    identityProvider: {
      authorizeUrl: `${idp.url}/authorize`,
      tokenUrl: `${idp.url}/token`,
      userInfoUrl: `${idp.url}/userinfo`,
      clientId: 'fuzz-ext',
      clientSecret: 'fuzz-ext-secret',
    },
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  return { server, fx, idp, idpClientId };
}
