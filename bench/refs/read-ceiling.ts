/**
 * Read ceiling: Fastify `GET /Patient/:id` doing one indexed `SELECT content FROM bench_resource
 * WHERE id = $1` and returning it. Seeds 1000 JSONB Patient rows at start (ids from fixtures.seededId).
 * Database: PostgreSQL at BENCH_DATABASE_URL when set, else PGlite — see db.ts.
 */
import Fastify from 'fastify';
import { exitWithParent } from './common.ts';
import { openDb } from './db.ts';
import { SEEDED_ROWS, seededId } from './fixtures.ts';

const db = await openDb();
await db.exec(`CREATE TABLE IF NOT EXISTS bench_resource (
  id uuid PRIMARY KEY,
  content jsonb NOT NULL
); TRUNCATE bench_resource;`);
const rows: unknown[] = [];
for (let i = 0; i < SEEDED_ROWS; i++) {
  const id = seededId(i);
  rows.push(
    id,
    JSON.stringify({
      resourceType: 'Patient',
      id,
      meta: { versionId: '1', lastUpdated: new Date().toISOString(), project: 'bench-project' },
      name: [{ given: [`Given${i}`], family: `Family${i}` }],
      gender: i % 2 ? 'female' : 'male',
      birthDate: `19${String(50 + (i % 50)).padStart(2, '0')}-01-01`,
      identifier: [{ system: 'urn:bench', value: String(i) }],
    }),
  );
}
for (let i = 0; i < SEEDED_ROWS; i += 100) {
  const slice = rows.slice(i * 2, (i + 100) * 2);
  const values = Array.from(
    { length: slice.length / 2 },
    (_, j) => `($${j * 2 + 1}::uuid, $${j * 2 + 2}::jsonb)`,
  );
  await db.query(`INSERT INTO bench_resource (id, content) VALUES ${values.join(', ')}`, slice);
}

const app = Fastify({ logger: false });
app.get<{ Params: { id: string } }>('/Patient/:id', async (req, reply) => {
  const found = await db.query<{ content: unknown }>('SELECT content FROM bench_resource WHERE id = $1', [
    req.params.id,
  ]);
  if (found.length === 0) return reply.code(404).send({ resourceType: 'OperationOutcome' });
  return reply.type('application/fhir+json').send(found[0]!.content);
});

await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;
exitWithParent(async () => {
  await app.close();
  await db.close();
});
process.stdout.write(`${JSON.stringify({ port })}\n`);
