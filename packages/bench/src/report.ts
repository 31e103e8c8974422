import type { Ratio, Row } from './result.js';

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

function cpuCell(row: Row, cpus: number): string {
  const letters: Record<string, string> = { server: 's', proxy: 'p', redis: 'r', loadgen: 'L' };
  const parts = Object.keys(letters).filter((k) => row.cpu[k] !== undefined).map((k) => `${letters[k]}${fmt(row.cpu[k], 1)}`);
  const flags = [row.loadgenSaturated ? 'L sat' : '', machineBound(row, cpus) ? 'M sat' : ''].filter(Boolean);
  return parts.join(' ') + (flags.length ? ` (${flags.join(', ')})` : '');
}

/** Whether the measured processes together kept ≥ 90 % of the machine's cores busy. */
export function machineBound(row: Row, cpus: number): boolean {
  return (row.busyCores ?? 0) >= 0.9 * cpus;
}

/** `met` / `NOT met` against the goal, read from the same Ratio the cell prints. */
function goalText(r: Ratio): string {
  return `goal ${r.higherIsBetter ? '≥' : '≤'}${r.goal} ${r.met ? 'met' : 'NOT met'}`;
}

function ratioCell(row: Row): string {
  const r = row.ratio;
  if (!r) return '';
  const basis = r.basis ? ` on ${r.basis}` : '';
  const goal = r.goal === undefined ? '' : ` (${goalText(r)})`;
  return `${r.value.toFixed(2)}× ${r.to}${basis}${goal}`;
}

/**
 * The verdict line: every row that has a goal, with the ratio the table shows beside it, and
 * a count. Empty when no row has a goal (e.g. `--targets herald` alone).
 */
export function formatVerdict(rows: Row[]): string {
  const judged = rows.filter((r): r is Row & { ratio: Ratio } => !r.skipped && r.ratio?.goal !== undefined);
  if (judged.length === 0) return '';
  const met = judged.filter((r) => r.ratio.met).length;
  const parts = judged.map((r) => `${r.scenario} ${r.target} ${r.ratio.value.toFixed(2)}× ${r.ratio.to}${r.ratio.basis ? ` on ${r.ratio.basis}` : ''} ${goalText(r.ratio)}`);
  return `verdict: ${met} of ${judged.length} goals met — ${parts.join('; ')}`;
}

function resultCell(r: Row): string {
  if (r.unit === 'KB/conn') return `${fmt(r.value)} ${r.unit}`;
  const noLoss = r.extra?.maxNoLossRate;
  return `${big(r.value)} ${r.unit}${typeof noLoss === 'number' ? ` (no loss ${big(noLoss)})` : ''}`;
}

/** The final table as text. */
export function formatTable(rows: Row[], cpus: number): string {
  const header = ['scenario', 'target', 'result', 'p50 ms', 'p99 ms', 'p999 ms', 'lost', 'µs CPU/msg', 'CPU s (s/p/r/L)', 'ratio'];
  const lines = rows.map((r) =>
    r.skipped
      ? [r.scenario, r.target, `skipped: ${r.skipped}`, '', '', '', '', '', '', '']
      : [
          r.scenario,
          r.target,
          resultCell(r),
          fmt(r.p50),
          fmt(r.p99),
          fmt(r.p999),
          r.lost === undefined ? '-' : String(r.lost),
          fmt(r.cost),
          cpuCell(r, cpus),
          ratioCell(r),
        ],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.filter((l) => !l[2]!.startsWith('skipped')).map((l) => l[i]!.length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [pad(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(pad)].join('\n');
}

/** Notes printed under the table: CPU legend and saturation. */
export function formatNotes(report: BenchReport): string {
  const notes = [
    'µs CPU/msg: CPU the servers (and proxy) spent per message delivered — steadier than msg/s on a shared machine.',
    'CPU s: s = server processes, p = proxy, r = redis-server, L = load agents (seconds during the measurement).',
  ];
  if (report.rows.some((r) => r.loadgenSaturated)) {
    notes.push('(L sat): a load agent used ≥ 90 % of a core in that run — the load generator may be what limited it.');
  }
  if (report.rows.some((r) => machineBound(r, report.machine.cpus))) {
    notes.push(`(M sat): server, proxy, redis and load agents together kept ≥ 90 % of the ${report.machine.cpus} cores busy — the machine was the limit; ratios compare targets under the same limit.`);
  }
  for (const r of report.rows) {
    const q = r.extra?.p99RateRatio;
    if (typeof q === 'number' && r.ratio) {
      notes.push(`fanout, highest rate with p99 within the limit: ${r.target} = ${q.toFixed(2)}× ${r.ratio.to} (moves with the machine's other load; the goal is judged on the no-loss rate).`);
    }
  }
  if (report.rows.some((r) => r.scenario === 'fanout')) {
    notes.push('fanout result: highest publish rate with no loss and p99 within the limit; "no loss": highest rate with no loss at any latency.');
  }
  notes.push(`Machine: ${report.machine.cpus} CPUs, load average at start ${report.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}; Node ${report.machine.node}.`);
  return notes.join('\n');
}
