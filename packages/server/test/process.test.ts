import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startCommand } from '../scripts/start-command.mjs';
import { createPgliteDb } from '../src/storage/pglite/index.ts';
import { createThrowawayPostgres } from './support/db.ts';
import { spawnServer, stop, waitHealthy } from './support/process.ts';
import { freePort } from './support/server.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Reads what the server stored, straight from the embedded database of a stopped server. */
async function snapshot(dataDir: string) {
  const db = await createPgliteDb(join(dataDir, 'pglite'));
  try {
    const admins = await db.query<{ id: string }>(
      "SELECT id FROM resource WHERE resource_type = 'User' AND content->>'email' = 'admin@example.com'",
    );
    const projects = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM resource WHERE resource_type = 'Project' AND content->>'superAdmin' = 'true'",
    );
    const keys = await db.query<{ kid: string }>('SELECT kid FROM signing_key ORDER BY kid');
    return {
      admin: admins.map((r) => r.id),
      superAdminProjects: projects[0]?.n,
      keys: keys.map((k) => k.kid),
    };
  } finally {
    await db.close();
  }
}

function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedhir-data-'));
  dirs.push(dir);
  return dir;
}

test('embedded mode: first start prints a generated password once; data survives a restart', async () => {
  const dataDir = tempDataDir();
  const port = await freePort();
  const env = { PORT: String(port), DATA_DIR: dataDir };
  const baseUrl = `http://localhost:${port}/`;

  const first = spawnServer(env);
  await waitHealthy(`http://127.0.0.1:${port}/`, first);
  // The process runs with npm start's environment (its leading NAME=value words), as users run it.
  const environ = readFileSync(`/proc/${first.child.pid}/environ`, 'utf8').split('\0');
  for (const [name, value] of Object.entries(startCommand().env))
    assert.ok(environ.includes(`${name}=${value}`));
  const printed = /password:\s+(\S+)/.exec(first.output())?.[1];
  assert.ok(printed, 'the generated password is printed on first start');
  assert.match(first.output(), new RegExp(`running at ${baseUrl.replace(/[/.]/g, '\\$&')}`));
  const file = join(dataDir, 'admin-password.txt');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(readFileSync(file, 'utf8').split('\n')[1], printed);
  assert.equal(statSync(join(dataDir, 'secret.key')).mode & 0o777, 0o600);
  assert.equal(await stop(first), 0, 'graceful shutdown exits 0');
  const before = await snapshot(dataDir);
  assert.equal(before.superAdminProjects, 1);

  const second = spawnServer(env);
  await waitHealthy(`http://127.0.0.1:${port}/`, second);
  assert.doesNotMatch(second.output(), /password:\s+\S+\s+\(shown once/, 'the password is not printed again');
  assert.match(second.output(), /admin-password\.txt/);
  // The embedded engine has no autovacuum; the server's first maintenance pass (2 s after start)
  // analyzes what the bootstrap wrote.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(await stop(second), 0);
  // The data survived: the same admin user and signing keys, and the bootstrap did not run twice.
  assert.deepEqual(await snapshot(dataDir), before);
  const db = await createPgliteDb(join(dataDir, 'pglite'));
  try {
    const [resource] = await db.query<{ reltuples: number }>(
      "SELECT reltuples::int AS reltuples FROM pg_class WHERE relname = 'resource'",
    );
    assert.ok((resource?.reltuples ?? -1) > 0, `resource was analyzed (reltuples ${resource?.reltuples})`);
  } finally {
    await db.close();
  }
});

test('a second process on the same DATA_DIR is refused with a clear message', async () => {
  const dataDir = tempDataDir();
  const port = await freePort();
  const first = spawnServer({ PORT: String(port), DATA_DIR: dataDir });
  await waitHealthy(`http://127.0.0.1:${port}/`, first);
  const second = spawnServer({ PORT: String(await freePort()), DATA_DIR: dataDir });
  assert.equal(await second.exited, 1);
  assert.match(second.output(), /DATA_DIR .* is in use by process \d+/);
  await stop(first);
});

test('an invalid configuration exits 1 with a one-line reason naming the variable', async () => {
  for (const [env, pattern] of [
    [{ PORT: 'eighty' }, /PORT: must be a whole number/],
    [{ BASE_URL: 'ftp://x/' }, /BASE_URL: must use http: or https:/],
    [{ DATABASE_URL: 'postgres://127.0.0.1/x' }, /SECRET_KEY: is required when DATABASE_URL is set/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: must be one of/],
  ] as const) {
    const proc = spawnServer({ DATA_DIR: tempDataDir(), ...env });
    assert.equal(await proc.exited, 1, JSON.stringify(env));
    const lines = proc.output().trim().split('\n');
    assert.equal(lines.length, 1, proc.output());
    assert.match(lines[0] ?? '', pattern);
    assert.doesNotMatch(proc.output(), /\bat \w+ \(/, 'no stack trace');
  }
});

if (process.env.TEST_DATABASE_URL) {
  test('two server processes on one PostgreSQL start together without migration or bootstrap errors', async () => {
    const { url, drop } = await createThrowawayPostgres();
    const secret = 'x'.repeat(48);
    const ports = [await freePort(), await freePort()];
    const procs = ports.map((port) =>
      spawnServer({ PORT: String(port), DATABASE_URL: url, SECRET_KEY: secret, DATA_DIR: tempDataDir() }),
    );
    try {
      await Promise.all(procs.map((p, i) => waitHealthy(`http://127.0.0.1:${ports[i]}/`, p)));
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const projects = await client.query(
        "SELECT count(*)::int AS n FROM resource WHERE resource_type = 'Project' AND content->>'superAdmin' = 'true'",
      );
      const keys = await client.query(
        'SELECT alg, count(*)::int AS n FROM signing_key GROUP BY alg ORDER BY alg',
      );
      await client.end();
      assert.equal(projects.rows[0].n, 1, 'one super admin project');
      assert.deepEqual(keys.rows, [
        { alg: 'ES256', n: 1 },
        { alg: 'RS256', n: 1 },
      ]);
    } finally {
      await Promise.all(procs.map((p) => stop(p)));
      await drop();
    }
  });

  test('production mode warns at start, in the log, when PostgreSQL will not autovacuum its tables', async () => {
    const { url, drop } = await createThrowawayPostgres();
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: url });
    const env = { DATABASE_URL: url, SECRET_KEY: 'y'.repeat(48), DATA_DIR: tempDataDir() };
    const warning = 'PostgreSQL will not ANALYZE or VACUUM these tables by itself';
    const startOnce = async () => {
      const port = await freePort();
      const proc = spawnServer({ ...env, PORT: String(port) });
      try {
        await waitHealthy(`http://127.0.0.1:${port}/`, proc);
        // The check runs after listening: give its two reads a moment, bounded.
        for (let i = 0; i < 50 && !proc.output().includes(warning); i++)
          await new Promise((r) => setTimeout(r, 100));
        return proc.output();
      } finally {
        await stop(proc);
      }
    };
    try {
      await client.connect();
      const first = await startOnce();
      // Server-wide switches are the machine's (CI's PostgreSQL runs with autovacuum off): the log
      // must say exactly what pg_settings says.
      const off = await client.query(
        "SELECT name FROM pg_settings WHERE name IN ('autovacuum', 'track_counts') AND setting = 'off' ORDER BY name",
      );
      for (const { name } of off.rows) assert.match(first, new RegExp(`the server runs with ${name} = off`));
      if (off.rows.length === 0) assert.doesNotMatch(first, new RegExp(warning));
      assert.doesNotMatch(first, /autovacuum is disabled for/);

      await client.query('ALTER TABLE audit_event SET (autovacuum_enabled = off)');
      const second = await startOnce();
      const line = second.split('\n').find((l) => l.includes(warning));
      assert.ok(line, `no warning in:\n${second}`);
      const entry = JSON.parse(line) as { level: number; problems: string[] };
      assert.equal(entry.level, 40, 'logged at warn');
      assert.ok(entry.problems.includes('autovacuum is disabled for audit_event'), line);
    } finally {
      await client.end();
      await drop();
    }
  });
}
