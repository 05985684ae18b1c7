import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inputsFingerprint, isBuildCurrent, STAMP, writeStamp } from '../scripts/build.mjs';
import { parseStartScript, startCommand } from '../scripts/start-command.mjs';

const readManifest = (url: URL) =>
  JSON.parse(readFileSync(url, 'utf8')) as { scripts: Record<string, string> };

test('start script: leading NAME=value words are the environment, then node, its flags and the file', () => {
  assert.deepEqual(parseStartScript('node dist/main.js'), { env: {}, args: ['dist/main.js'] });
  assert.deepEqual(parseStartScript('  A_B=1 C=  node --x=2 --y dist/main.js '), {
    env: { A_B: '1', C: '' },
    args: ['--x=2', '--y', 'dist/main.js'],
  });
  // An assignment after the program is an argument, not the environment.
  assert.deepEqual(parseStartScript('node X=1 dist/main.js').args, ['X=1', 'dist/main.js']);
});

test('start script: anything but "[NAME=value ...] node [flags] <file>" is refused', () => {
  for (const script of [
    'tsx src/main.ts',
    'A=1 npm run x',
    'node',
    'A=1 node',
    'lower=1 node dist/main.js',
  ]) {
    assert.throws(() => parseStartScript(script), /scripts\.start must be/, script);
  }
});

test('start script: the package manifest’s start script parses, and runs the built main', () => {
  assert.equal(startCommand().args.at(-1), 'dist/main.js');
});

test('root start script: the server package’s prestart and start, run without a second npm', () => {
  const root = readManifest(new URL('../../../package.json', import.meta.url));
  const server = readManifest(new URL('../package.json', import.meta.url));
  assert.equal(server.scripts.prestart, 'node scripts/build.mjs --if-stale');
  const { env, args } = parseStartScript(String(server.scripts.start));
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  // `exec`: the shell npm starts becomes the server, so npm's signals reach the server itself.
  const expected = [
    'cd packages/server &&',
    server.scripts.prestart,
    '&&',
    ...assignments,
    'exec node',
    ...args,
  ];
  assert.equal(root.scripts.start, expected.join(' '));
});

test('build --if-stale: dist/ is current until a source is added, changed, touched or removed', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedhir-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const sub of ['src/oauth', 'scripts', 'dist']) mkdirSync(join(dir, sub), { recursive: true });
  const files = [
    'src/main.ts',
    'src/oauth/sign-worker.js',
    'scripts/build.mjs',
    'package.json',
    'tsconfig.json',
  ];
  for (const file of files) writeFileSync(join(dir, file), `// ${file}\n`);
  const outputs = ['main.js', 'worker.js', 'sign-worker.js', 'chunk-ABC123.js', 'main.js.map'];
  for (const file of outputs) writeFileSync(join(dir, 'dist', file), '');
  const stamp = () => writeStamp(dir, inputsFingerprint(dir), outputs);

  assert.equal(isBuildCurrent(dir), false, 'no stamp: never built by this script');
  stamp();
  assert.equal(isBuildCurrent(dir), true);
  assert.equal(inputsFingerprint(dir), inputsFingerprint(dir), 'the same tree, the same fingerprint');

  const changes: [string, () => void][] = [
    ['a source edited (same size, new time)', () => utimesSync(join(dir, 'src/main.ts'), 1, 1_700_000_000)],
    [
      'a nested source grown',
      () => writeFileSync(join(dir, 'src/oauth/sign-worker.js'), '// longer\n// file\n'),
    ],
    ['a source added', () => writeFileSync(join(dir, 'src/new.ts'), '')],
    ['a source removed', () => rmSync(join(dir, 'src/new.ts'))],
    ['the build script changed', () => writeFileSync(join(dir, 'scripts/build.mjs'), '// other\n')],
    ['tsconfig.json changed', () => writeFileSync(join(dir, 'tsconfig.json'), '{}\n')],
  ];
  for (const [what, change] of changes) {
    change();
    assert.equal(isBuildCurrent(dir), false, what);
    stamp();
    assert.equal(isBuildCurrent(dir), true, `${what}, then built`);
  }
  rmSync(join(dir, 'dist', 'main.js.map'));
  assert.equal(isBuildCurrent(dir), true, 'a source map is not needed to run');
  rmSync(join(dir, 'dist', 'chunk-ABC123.js'));
  assert.equal(isBuildCurrent(dir), false, 'a chunk the build wrote missing from dist/');
  writeFileSync(join(dir, 'dist', 'chunk-ABC123.js'), '');
  assert.equal(isBuildCurrent(dir), true, 'the chunk back');
  rmSync(join(dir, 'dist', 'worker.js'));
  assert.equal(isBuildCurrent(dir), false, 'an entry point missing from dist/');
  writeFileSync(join(dir, 'dist', 'worker.js'), '');
  writeFileSync(join(dir, 'dist', STAMP), inputsFingerprint(dir));
  assert.equal(isBuildCurrent(dir), false, "an earlier version's stamp (the bare fingerprint)");
});
