/** Renders the run's one table (plus the failure reasons under it) as plain text. */
import type { CaseSummary } from './evaluate.ts';

const HEADERS = [
  'case',
  'req/s median [min–max]',
  'p50 ms',
  'p99 ms',
  'non-2xx',
  'RSS peak MB',
  'CPU µs/req (main)',
  'reference',
  'ratio',
  'target',
  'ceiling÷sign',
  'result',
];

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const ms = (n: number) => (Number.isFinite(n) ? String(Math.round(n * 10) / 10) : '—');
const x = (n: number | null | undefined) => (n === null || n === undefined ? '—' : `${n.toFixed(2)}×`);

function rows(s: CaseSummary): string[][] {
  const first = s.targets[0];
  const base = [
    s.name,
    s.measured ? `${int(s.rps.median)} [${int(s.rps.min)}–${int(s.rps.max)}]` : 'not measured',
    s.measured ? ms(s.p50) : '—',
    s.measured ? ms(s.p99) : '—',
    s.measured ? (s.errors > 0 ? `${s.non2xx} (+${s.errors} err)` : String(s.non2xx)) : '—',
    s.rssPeakMb === null ? '—' : `${s.rssPeakMb.toFixed(0)}${s.maxRssMb !== null ? ` (≤${s.maxRssMb})` : ''}`,
    s.cpuUsPerRequest ? `${int(s.cpuUsPerRequest.total)} (${int(s.cpuUsPerRequest.main)})` : '—',
    first ? first.reference : '—',
    first ? x(first.ratio?.median) : '—',
    first ? targetText(first.need, first.p99AtMostReference) : '—',
    x(s.ceilingVsSign),
    s.verdict,
  ];
  const more = s.targets
    .slice(1)
    .map((t) => [
      '  ↳ also',
      '',
      '',
      '',
      '',
      '',
      '',
      t.reference,
      x(t.ratio?.median),
      targetText(t.need, t.p99AtMostReference),
      '',
      t.pass ? 'pass' : 'FAIL',
    ]);
  return [base, ...more];
}

function targetText(need: number, p99: boolean): string {
  return `≥${need}×${p99 ? ' & p99≤ref' : ''}`;
}

export function renderTable(summaries: readonly CaseSummary[], title: string): string {
  const body = summaries.flatMap(rows);
  const all = [HEADERS, ...body];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  const out = [title, rule, line(HEADERS), rule, ...body.map(line), rule];
  const reasons = summaries.filter((s) => s.failures.length > 0);
  if (reasons.length) {
    out.push('Failures:');
    for (const s of reasons) for (const f of s.failures) out.push(`  ${s.name}: ${f}`);
  }
  out.push(
    'ratio = median over rounds of (case req/s ÷ reference req/s, same round); ceiling÷sign = the case’s',
    'reference (or the reference itself) ÷ sign ceiling, medians. non-2xx and errors include warm-ups.',
    'CPU µs/req = CPU time of the server process (all threads; main = its event-loop thread) per 2xx answer.',
  );
  return out.join('\n');
}
