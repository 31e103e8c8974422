import type { Row } from './result.js';

/** Everything a run produced: written as JSON, printed as a table. */
export interface BenchReport {
  startedAt: string;
  durationSec: number;
  machine: { cpus: number; node: string; platform: string; loadavg: number[] };
  options: Record<string, unknown>;
  rows: Row[];
}

const fmt = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
const big = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

function cpuCell(row: Row): string {
  const letters: Record<string, string> = { server: 's', proxy: 'p', redis: 'r', loadgen: 'L' };
  const parts = Object.keys(letters).filter((k) => row.cpu[k] !== undefined).map((k) => `${letters[k]}${fmt(row.cpu[k], 1)}`);
  return parts.join(' ') + (row.loadgenSaturated ? ' (L sat)' : '');
}

function ratioCell(row: Row): string {
  const r = row.ratio;
  if (!r) return '';
  const goal = r.goal === undefined ? '' : ` (goal ${r.higherIsBetter ? '≥' : '≤'}${r.goal} ${r.met ? 'met' : 'NOT met'})`;
  return `${r.value.toFixed(2)}× ${r.to}${goal}`;
}

/** The final table as text. */
export function formatTable(rows: Row[]): string {
  const header = ['scenario', 'target', 'result', 'p50 ms', 'p99 ms', 'p999 ms', 'lost', 'CPU s (s/p/r/L)', 'ratio'];
  const lines = rows.map((r) =>
    r.skipped
      ? [r.scenario, r.target, `skipped: ${r.skipped}`, '', '', '', '', '', '']
      : [
          r.scenario,
          r.target,
          r.unit === 'KB/conn' ? `${fmt(r.value)} ${r.unit}` : `${big(r.value)} ${r.unit}`,
          fmt(r.p50),
          fmt(r.p99),
          fmt(r.p999),
          r.lost === undefined ? '-' : String(r.lost),
          cpuCell(r),
          ratioCell(r),
        ],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.filter((l) => !l[2]!.startsWith('skipped')).map((l) => l[i]!.length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [pad(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(pad)].join('\n');
}

/** Notes printed under the table: CPU legend and saturation. */
export function formatNotes(report: BenchReport): string {
  const notes = ['CPU s: s = server processes, p = proxy, r = redis-server, L = load agents (seconds during the measurement).'];
  if (report.rows.some((r) => r.loadgenSaturated)) {
    notes.push('(L sat): a load agent used ≥ 90 % of a core in that run — the load generator may be what limited it.');
  }
  notes.push(`Machine: ${report.machine.cpus} CPUs, load average at start ${report.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}; Node ${report.machine.node}.`);
  return notes.join('\n');
}
