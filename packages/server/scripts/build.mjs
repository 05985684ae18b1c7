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
 */
import { readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Builds dist/ and removes what an earlier build left there (chunk names carry a content hash). */
export async function build() {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: {
      main: 'src/main.ts',
      worker: 'src/storage/pglite/worker.js',
      'sign-worker': 'src/oauth/sign-worker.js',
    },
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
  const outDir = join(root, 'dist');
  const written = new Set(
    Object.keys(result.metafile.outputs).map((file) => relative(outDir, join(root, file))),
  );
  for (const file of readdirSync(outDir)) {
    if (!written.has(file)) rmSync(join(outDir, file), { force: true, recursive: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await build();
}
