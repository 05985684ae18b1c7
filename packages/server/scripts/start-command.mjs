/**
 * The command `npm start` runs after building (package.json `scripts.start`), as arguments for
 * `process.execPath`: the benchmark and the process tests start the server exactly this way, Node
 * flags included, so what they measure and test is what users run.
 */
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/** @returns {string[]} e.g. `['--max-semi-space-size=8', 'dist/main.js']`, relative to packages/server */
export function startArgs() {
  const [program, ...args] = String(manifest.scripts.start).trim().split(/\s+/);
  if (program !== 'node' || args.length === 0) {
    throw new Error(`scripts.start must be "node [flags] <file>", not ${manifest.scripts.start}`);
  }
  return args;
}
