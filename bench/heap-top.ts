/**
 * `node --import tsx bench/heap-top.ts <file.heapprofile> [rows]`: what a sampling heap profile
 * (BENCH_HEAP_PROF, lib/heap-profile.mjs) says was allocated, in total and by function (self, then
 * inclusive of callees). Divide the total by the requests the process answered for bytes per request.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node --import tsx bench/heap-top.ts <file.heapprofile> [rows]\n');
  process.exit(2);
}
const rows = Number.parseInt(rowsArg ?? '', 10) || 30;
const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: ProfileNode };
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;

const label = ({ callFrame: f }: ProfileNode) =>
  `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;

function walk(node: ProfileNode, stack: readonly string[]): void {
  const name = label(node);
  total += node.selfSize;
  self.set(name, (self.get(name) ?? 0) + node.selfSize);
  const here = stack.includes(name) ? stack : [...stack, name];
  for (const frame of here) inclusive.set(frame, (inclusive.get(frame) ?? 0) + node.selfSize);
  for (const child of node.children) walk(child, here);
}
walk(head, []);

// One write: piped into `head`, many small writes would end in EPIPE.
const lines = [`sampled allocations: ${(total / 1e6).toFixed(1)} MB`];
const section = (title: string, map: Map<string, number>) => {
  lines.push(title);
  for (const [name, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    lines.push(`${((100 * bytes) / total).toFixed(1).padStart(6)} %  ${name}`);
  }
};
section('by function (self):', self);
section('by function (with callees):', inclusive);
process.stdout.write(`${lines.join('\n')}\n`);
