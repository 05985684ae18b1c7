/**
 * `--fresh-database`: production runs on an empty database. The bench's PostgreSQL keeps what every
 * run wrote (logins, refresh tokens, audit events: over a million rows each after a few runs), and
 * on a server without autovacuum those tables are never analyzed, so runs at different sizes are not
 * comparable (docs/performance.md, 2026-12-06 III). This makes `<name>_fresh` beside the database
 * of BENCH_DATABASE_URL, dropping any earlier one first; it is kept after the run for inspection and
 * replaced by the next. The database named by the URL itself is never written to.
 */
import pg from 'pg';

/** The URL of a new, empty database beside `url`'s (which must exist; its user needs CREATEDB). */
export async function freshDatabase(url: string): Promise<string> {
  const target = new URL(url);
  const base = decodeURIComponent(target.pathname.replace(/^\//, '')) || 'postgres';
  const name = `${base}_fresh`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const quoted = client.escapeIdentifier(name);
    // WITH (FORCE), PostgreSQL 13+: a server left running by an interrupted run must not block it.
    await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoted}`);
  } finally {
    await client.end();
  }
  target.pathname = `/${encodeURIComponent(name)}`;
  return target.toString();
}
