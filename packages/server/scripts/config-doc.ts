/**
 * Generates docs/configuration.md from CONFIG_VARIABLES (src/config.ts), so the reference cannot
 * drift from the code: `npm run docs:config` writes it, and test/config.test.ts fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../src/config.ts';

export const CONFIG_DOC_PATH = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));

export function renderConfigDoc(): string {
  const rows = CONFIG_VARIABLES.map(
    (v) =>
      `| \`${v.name}\` | ${v.default.startsWith('(') ? v.default : `\`${v.default}\``} | ${v.description} |`,
  );
  return `# Configuration

<!-- Generated from packages/server/src/config.ts by \`npm run docs:config\`; do not edit by hand. -->

fedhir reads its configuration from environment variables once, at start. An invalid value stops the
server with a one-line message naming the variable (for example
\`fedhir: invalid configuration: PORT: must be a whole number, got "eighty"\`).

| Variable | Default | Meaning |
|---|---|---|
${rows.join('\n')}

## Typical set-ups

**Laptop (embedded database).** Nothing to set: \`npm start\` keeps everything under \`./data\`
(database, generated \`secret.key\`, and the generated super-admin password in \`admin-password.txt\`).
The server analyzes and vacuums the embedded database itself (PGlite has no autovacuum), every minute
at most, only the tables that changed enough.

**Production (several instances).** Every instance gets the same \`BASE_URL\`, \`DATABASE_URL\`,
\`REDIS_URL\` and \`SECRET_KEY\`:

\`\`\`sh
BASE_URL=https://auth.example.com/ \\
DATABASE_URL=postgres://fedhir:…@db:5432/fedhir \\
REDIS_URL=redis://cache:6379 \\
SECRET_KEY="$(cat /run/secrets/fedhir-secret-key)" \\
ADMIN_EMAIL=ops@example.com ADMIN_PASSWORD=… \\
HOST=0.0.0.0 TRUST_PROXY=true npm start
\`\`\`

PostgreSQL's autovacuum keeps the statistics and dead rows of fedhir's tables in check (logins,
refresh tokens and audit events grow with every sign-in and token). When it is off, for the server
(\`autovacuum\` or \`track_counts\`) or for one of fedhir's tables (\`autovacuum_enabled\`), each
instance says so in a warning at start (\`storage/autovacuum-check.ts\`); then run
\`VACUUM (ANALYZE)\` on a schedule yourself.
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(CONFIG_DOC_PATH, renderConfigDoc());
  process.stdout.write(`wrote ${CONFIG_DOC_PATH}\n`);
}
