import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config.ts';
import type { Db } from './db.ts';
import { createPgliteDb } from './pglite/index.ts';

export class DataDirInUse extends Error {}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is single-writer: a second process on the same DATA_DIR would corrupt it. A lock file
 * holding the owner's pid refuses the second one with a clear message; a lock left by a process
 * that no longer exists (kill -9) is taken over.
 */
function lockDataDir(dir: string): () => void {
  const lockPath = join(dir, 'fedhir.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lockPath, 'utf8') === String(process.pid)) unlinkSync(lockPath);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lockPath, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new DataDirInUse(
          `DATA_DIR ${resolve(dir)} is in use by process ${owner}: the embedded database allows one server process; set DATABASE_URL to run several`,
        );
      }
      unlinkSync(lockPath);
    }
  }
  throw new DataDirInUse(`could not lock DATA_DIR ${resolve(dir)}`);
}

/** Opens PostgreSQL when DATABASE_URL is set, else the embedded database under DATA_DIR. */
export async function openStorage(config: Config): Promise<Db> {
  if (config.databaseUrl) {
    // Loaded only when used: the embedded server never loads the PostgreSQL driver.
    const { createPostgresDb } = await import('./postgres.ts');
    return createPostgresDb(config.databaseUrl, { preparedStatements: config.databasePreparedStatements });
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const unlock = lockDataDir(config.dataDir);
  try {
    const db = await createPgliteDb(join(config.dataDir, 'pglite'));
    return {
      ...db,
      async close() {
        await db.close();
        unlock();
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}
