/**
 * `npm run build` (and before `npm start`): bundles the server into dist/ with esbuild, so that the
 * server runs as plain JavaScript. Running the TypeScript sources through a loader (`--import tsx`)
 * costs a module-loader thread with its own V8 isolate for the life of the process (~50 MB of
 * resident memory, docs/performance.md) and transpiles ~150 modules at every start.
 *
 * Three entry points: `dist/main.js` (the process), `dist/worker.js` (the embedded database's
 * thread, which src/storage/pglite/index.ts starts as `./worker.js` next to the module that holds
 * it — in dist/ every chunk sits at the top level) and `dist/sign-worker.js` (the signing thread,
 * started the same way by src/oauth/signer.ts). Packages stay external: node_modules is
 * resolved at run time as usual. Plain JavaScript (no loader needed) so that it runs before
 * anything is built.
 *
 * `--if-stale` (what `npm start` runs) skips the build when dist/ was built from the sources as they
 * are: on the 2-core machines of docs/performance.md the bundling was ~0.3 s of every start, a
 * tenth of the cold-start budget (performance.md: ≤ 3 s), though only a changed source needs it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, 'dist');
const ENTRY_POINTS = {
  main: 'src/main.ts',
  worker: 'src/storage/pglite/worker.js',
  'sign-worker': 'src/oauth/sign-worker.js',
};
/**
 * The file in dist/ where a build records what it was built from ({@link inputsFingerprint}) and the
 * JavaScript files it wrote (entry points and the chunks they import), as JSON ({@link writeStamp}).
 */
export const STAMP = '.build-inputs';

/**
 * What a build reads, as one digest: the path, size and modification time of every file under src/,
 * and of this script, the package manifest and tsconfig.json (esbuild reads the last two). Editing,
 * adding, removing or checking out a file changes it; packages are not bundled (they stay in
 * node_modules), so installing others does not.
 */
export function inputsFingerprint(dir = root) {
  const files = readdirSync(join(dir, 'src'), { recursive: true, encoding: 'utf8' })
    .map((file) => join('src', file))
    .concat(['scripts/build.mjs', 'package.json', 'tsconfig.json'])
    .sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const stat = statSync(join(dir, file), { throwIfNoEntry: false });
    if (stat?.isFile()) hash.update(`${file}\0${stat.size}\0${stat.mtimeMs}\n`);
  }
  return hash.digest('hex');
}

/**
 * Records in `dir`/dist that it holds a build of `inputs` made of the `outputs` (paths in dist/).
 * @param {string} dir
 * @param {string} inputs
 * @param {readonly string[]} outputs
 */
export function writeStamp(dir, inputs, outputs) {
  const scripts = outputs.filter((file) => file.endsWith('.js')).sort();
  writeFileSync(join(dir, 'dist', STAMP), `${JSON.stringify({ inputs, outputs: scripts })}\n`);
}

/**
 * Whether `dir`/dist holds a build of the sources as they are now (the package by default): the stamp
 * names today's fingerprint, and every script that build wrote is still there — a chunk deleted by
 * hand would otherwise start a server that fails on its first import of it.
 */
export function isBuildCurrent(dir = root) {
  const dist = join(dir, 'dist');
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(dist, STAMP), 'utf8'));
  } catch {
    return false; // never built by this script, or by a version with another stamp format
  }
  if (stamp?.inputs !== inputsFingerprint(dir) || !Array.isArray(stamp.outputs)) return false;
  const scripts = [...Object.keys(ENTRY_POINTS).map((name) => `${name}.js`), ...stamp.outputs];
  return scripts.every((file) => typeof file === 'string' && existsSync(join(dist, file)));
}

/** Builds dist/ and removes what an earlier build left there (chunk names carry a content hash). */
export async function build() {
  // Taken before bundling: a source saved during the build leaves a stamp that no longer matches.
  const fingerprint = inputsFingerprint();
  // Loaded only to build: a start with a current dist/ never pays for esbuild's import.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ENTRY_POINTS,
    outdir: 'dist',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    // Not minified: stack traces in the logs keep function names and readable lines. The linked
    // source maps are for debuggers (and `node --enable-source-maps`); Node does not read them itself.
    sourcemap: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
  const written = new Set(
    Object.keys(result.metafile.outputs).map((file) => relative(outDir, join(root, file))),
  );
  for (const file of readdirSync(outDir)) {
    if (!written.has(file)) rmSync(join(outDir, file), { force: true, recursive: true });
  }
  writeStamp(root, fingerprint, [...written]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ifStale = process.argv.includes('--if-stale');
  if (!ifStale || !isBuildCurrent()) await build();
}
