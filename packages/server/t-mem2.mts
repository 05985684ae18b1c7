import { createPgliteDb } from '/work/main/packages/server/src/storage/pglite/index.ts';
import { PGlite } from '@electric-sql/pglite';
const rss = () => (process.memoryUsage().rss / 1048576).toFixed(0) + ' MB';
console.log('start', rss());
if (process.argv[2] === 'worker') { const db = await createPgliteDb('/tmp/rssdir/pglite'); await db.query('SELECT count(*) FROM login'); }
else { const db = await PGlite.create('/tmp/rssdir/pglite', { postgresqlconf: ['shared_buffers = 16MB'] } as never); await db.query('SELECT count(*) FROM login'); }
await new Promise((r) => setTimeout(r, 1500));
console.log(process.argv[2], rss());
