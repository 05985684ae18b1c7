import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStartScript, startCommand } from '../scripts/start-command.mjs';

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
