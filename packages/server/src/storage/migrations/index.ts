import type { Db } from '../db.ts';
import { m001Resources } from './001-resources.ts';
import { m002AuthState } from './002-auth-state.ts';
import { m003Federation } from './003-federation.ts';
import { m004AuditEvents } from './004-audit-events.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every schema change, in order. Append only: an applied migration is never edited. */
export const MIGRATIONS: readonly Migration[] = [
  m001Resources,
  m002AuthState,
  m003Federation,
  m004AuditEvents,
];

/** Arbitrary constant naming fedhir's migration lock among the database's advisory locks. */
const MIGRATION_LOCK_KEY = 7_262_001;

/**
 * Applies the migrations this database lacks, in one transaction, under an advisory lock, so that
 * instances starting together wait for each other instead of racing: the second one finds the
 * work done and applies nothing.
 */
export async function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS fedhir_migration (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const rows = await tx.query<{ version: number }>('SELECT version FROM fedhir_migration');
    const applied = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new Error(
        `the database schema (version ${newest}) is newer than this fedhir (version ${known}); upgrade fedhir`,
      );
    }
    const done: number[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO fedhir_migration (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      done.push(migration.version);
    }
    return done;
  });
}
