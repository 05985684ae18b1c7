import type { Queryable } from './db.ts';

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
  // reloptions keep the value as it was written (`off`, `0`, `'fals'`…): PostgreSQL's own boolean
  // input reads it, as it did when it accepted the option, instead of a list of spellings here.
  const tables = await db.query<{ relname: string }>(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                   -- CASE: SQL does not promise to test the prefix before the cast.
                   WHERE CASE WHEN starts_with(o, 'autovacuum_enabled=')
                     THEN NOT substr(o, length('autovacuum_enabled=') + 1)::boolean END)
     ORDER BY c.relname`,
  );
  if (tables.length > 0) {
    problems.push(`autovacuum is disabled for ${tables.map((t) => t.relname).join(', ')}`);
  }
  return problems;
}
