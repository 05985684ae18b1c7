import type { Queryable } from './db.ts';

/** The spellings PostgreSQL's boolean input accepts for false (a table's `autovacuum_enabled`). */
const FALSE_WORDS = ['false', 'off', 'no', '0', 'f', 'n'];

/**
 * Why PostgreSQL will not maintain fedhir's tables, or an empty list when it will.
 *
 * In production mode fedhir leaves ANALYZE and VACUUM to PostgreSQL's autovacuum (the embedded
 * engine has none, so there the server runs them: pglite/maintenance.ts). Without it the planner
 * never learns how large `login`, `refresh_token` and `audit_event` have grown, and the dead rows of
 * every code redemption, refresh rotation and revocation are never reclaimed: the embedded engine
 * showed what that costs (docs/performance.md, 2026-12-06: code redemption scanned every live login
 * once its statistics were stale). Autovacuum is off when the server says so (`autovacuum`), when
 * the statistics it reads are not collected (`track_counts`, PostgreSQL "Automatic Vacuuming"), or
 * for a single table (`autovacuum_enabled` storage parameter).
 */
export async function autovacuumProblems(db: Queryable): Promise<string[]> {
  const problems: string[] = [];
  const settings = await db.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts') ORDER BY name`,
  );
  for (const { name, setting } of settings) {
    if (setting === 'off') problems.push(`the server runs with ${name} = off`);
  }
  const tables = await db.query<{ relname: string }>(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                   WHERE lower(o) = ANY($1::text[]))
     ORDER BY c.relname`,
    [FALSE_WORDS.map((word) => `autovacuum_enabled=${word}`)],
  );
  if (tables.length > 0) {
    problems.push(`autovacuum is disabled for ${tables.map((t) => t.relname).join(', ')}`);
  }
  return problems;
}
