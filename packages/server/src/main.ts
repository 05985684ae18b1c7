/**
 * Process entry: configuration → storage → migrations → bootstrap → listen; graceful shutdown on
 * SIGTERM/SIGINT (stop accepting, finish in-flight requests, close pools).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './config.ts';
import { resolveSecretKey } from './services/secret-key.ts';
import { autovacuumProblems } from './storage/autovacuum-check.ts';
import { DataDirInUse, openStorage } from './storage/open.ts';
import { startEmbeddedMaintenance } from './storage/pglite/maintenance.ts';

function fail(message: string): never {
  process.stderr.write(`fedhir: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
  const secretKey = resolveSecretKey(config, (m) => process.stderr.write(`fedhir: warning: ${m}\n`));

  // The database opens first (the embedded one starts its own thread, ~0.7 s) and the application's
  // modules load while it does (~0.6 s), instead of all of them loading before it starts: cold
  // start is the longer of the two, not their sum (performance.md: ≤ 3 s).
  const opening = openStorage(config);
  opening.catch(() => {}); // awaited below; a failure must not surface as unhandled meanwhile
  const [{ buildApp }, { createServices }, { bootstrap }] = await Promise.all([
    import('./app.ts'),
    import('./services/container.ts'),
    import('./services/bootstrap.ts'),
  ]);

  let db: Awaited<ReturnType<typeof openStorage>>;
  try {
    db = await opening;
  } catch (err) {
    if (err instanceof DataDirInUse) fail(err.message);
    fail(`cannot open the database: ${(err as Error).message}`);
  }

  const services = await createServices(config, db, secretKey).catch((err: Error) => {
    fail(`cannot start: ${err.message}`);
  });
  const admin = await bootstrap(db, services.repo, {
    adminEmail: config.adminEmail,
    adminPassword: config.adminPassword,
    dataDir: config.dataDir,
  });

  const app = await buildApp(services);
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await services.close();
    fail(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }

  // PGlite has no autovacuum: the server runs its ANALYZE and VACUUM (storage/pglite/maintenance.ts).
  const maintenance =
    db.engine === 'pglite'
      ? startEmbeddedMaintenance(db, {
          onPass: (report) =>
            app.log[report.ms > 1000 ? 'warn' : 'debug'](
              {
                steps: report.steps.map((step) => ({ ...step, ms: Math.round(step.ms) })),
                databaseVacuum: report.databaseVacuum,
                ms: Math.round(report.ms),
              },
              'embedded database maintenance',
            ),
          onError: (err) => app.log.warn({ err }, 'embedded database maintenance failed'),
        })
      : undefined;

  if (db.engine === 'postgres') {
    // Not fatal (a DBA may vacuum by hand), but said once at start: see storage/autovacuum-check.ts.
    autovacuumProblems(db).then(
      (problems) => {
        if (problems.length === 0) return;
        app.log.warn(
          { problems },
          'PostgreSQL will not ANALYZE or VACUUM these tables by itself: plans go stale as logins, refresh tokens and audit events grow, and dead rows stay; enable autovacuum or run VACUUM (ANALYZE) regularly',
        );
      },
      (err: Error) => app.log.warn({ err }, 'could not read the autovacuum settings'),
    );
  }

  // Plain stdout, not the structured log: the generated password is shown once and never logged.
  const lines = [``, `fedhir is running at ${config.baseUrl}`, `  storage: ${db.engine}`];
  if (admin.generatedPassword) {
    lines.push(
      `  super admin: ${admin.email}`,
      `  password:    ${admin.generatedPassword}   (shown once; also kept in ${admin.passwordFile ?? 'nowhere'}, mode 0600)`,
    );
  } else if (existsSync(join(config.dataDir, 'admin-password.txt'))) {
    lines.push(`  super admin: ${admin.email} (password in ${join(config.dataDir, 'admin-password.txt')})`);
  } else {
    lines.push(`  super admin: ${admin.email}`);
  }
  lines.push(`  sign in:     ${config.baseUrl}oauth2/authorize  ·  health: ${config.baseUrl}healthcheck`, ``);
  process.stdout.write(`${lines.join('\n')}\n`);

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    try {
      await app.close();
      await maintenance?.stop();
      await services.close();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

await main();
