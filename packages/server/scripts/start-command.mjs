/**
 * The command `npm start` runs after building (package.json `scripts.start`), as an environment and
 * arguments for `process.execPath`: the benchmark and the process tests start the server exactly
 * this way, variables and Node flags included, so what they measure and test is what users run.
 */
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

const ASSIGNMENT = /^([A-Z_][A-Z0-9_]*)=(\S*)$/;

/**
 * @returns {{ env: Record<string, string>, args: string[] }} e.g.
 *   `{ env: { MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '32768' }, args: ['--max-semi-space-size=8', 'dist/main.js'] }`,
 *   the file relative to packages/server
 */
export function startCommand() {
  return parseStartScript(String(manifest.scripts.start));
}

/**
 * Splits a start script of the form `[NAME=value ...] node [flags] <file>` (what a POSIX shell runs
 * for `npm start`: leading assignments are the program's environment).
 * @param {string} script
 * @returns {{ env: Record<string, string>, args: string[] }}
 */
export function parseStartScript(script) {
  const words = script.trim().split(/\s+/);
  /** @type {Record<string, string>} */
  const env = {};
  for (let match = ASSIGNMENT.exec(words[0] ?? ''); match; match = ASSIGNMENT.exec(words[0] ?? '')) {
    const [, name = '', value = ''] = match;
    env[name] = value;
    words.shift();
  }
  const [program, ...args] = words;
  if (program !== 'node' || args.length === 0) {
    throw new Error(`scripts.start must be "[NAME=value ...] node [flags] <file>", not ${script}`);
  }
  return { env, args };
}
