import type { BenchReport } from './report.js';
import type { FanoutStep } from './scenarios/fanout.js';

/** One line of the plot: a target's rate steps. */
interface Series {
  target: string;
  /** The step that counted at each rate (the retry, when a step was run twice), by rate. */
  points: Array<{ rate: number; p99: number; pass: boolean; complete: boolean }>;
}

const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { left: 64, right: 170, top: 40, bottom: 52 };
// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (n: number) => (Math.round(n * 10) / 10).toString();

function series(report: BenchReport): Series[] {
  return report.rows
    .filter((r) => r.scenario === 'fanout' && !r.skipped && Array.isArray(r.extra?.steps))
    .map((r) => {
      const byRate = new Map<number, FanoutStep>();
      // Later steps at the same rate are the retries that decided it.
      for (const step of r.extra!.steps as FanoutStep[]) byRate.set(step.rate, step);
      const points = [...byRate.values()]
        .filter((s) => s.p99 > 0 && Number.isFinite(s.p99))
        .sort((a, b) => a.rate - b.rate)
        .map((s) => ({ rate: s.rate, p99: s.p99, pass: s.pass, complete: s.complete }));
      return { target: r.target, points };
    })
    .filter((s) => s.points.length > 0);
}

/** Tick values 1, 2, 5 × 10^k inside [lo, hi] (log axis). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

/**
 * The fan-out scenario as an SVG line chart: p99 latency (log scale) against the publish rate
 * (log scale: the rates double from step to step), one line per target, the `--p99-limit` as
 * a dashed line. Filled dot: the step passed; open dot: no loss but p99 over the limit; cross:
 * messages lost. `undefined` when the report has no fan-out steps. Hand-written: lines, dots
 * and two axes do not need a charting library.
 */
export function fanoutPlot(report: BenchReport): string | undefined {
  const all = series(report);
  if (all.length === 0) return undefined;
  const limit = Number(report.options.p99LimitMs) || undefined;
  const rates = all.flatMap((s) => s.points.map((p) => p.rate));
  const p99s = all.flatMap((s) => s.points.map((p) => p.p99)).concat(limit ? [limit] : []);
  const xLo = Math.min(...rates);
  const xHi = Math.max(...rates);
  const yLo = Math.min(...p99s) / 1.5;
  const yHi = Math.max(...p99s) * 1.5;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (rate: number) => MARGIN.left + (xHi === xLo ? plotW / 2 : ((Math.log(rate) - Math.log(xLo)) / (Math.log(xHi) - Math.log(xLo))) * plotW);
  const y = (ms: number) => MARGIN.top + plotH - ((Math.log(ms) - Math.log(yLo)) / (Math.log(yHi) - Math.log(yLo))) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`);
  const opts = report.options as { subscribers?: number; workers?: number };
  out.push(`<text x="${MARGIN.left}" y="22" font-size="14" font-weight="bold">fan-out: p99 latency vs publish rate (${opts.subscribers ?? '?'} subscribers, ${opts.workers ?? '?'} workers each)</text>`);
  // Grid and axes.
  for (const v of logTicks(yLo, yHi)) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${num(y(v) + 4)}" text-anchor="end">${v}</text>`);
  }
  for (const rate of [...new Set(rates)].sort((a, b) => a - b)) {
    out.push(`<line x1="${num(x(rate))}" x2="${num(x(rate))}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${num(x(rate))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${rate}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">publish rate (msg/s)</text>`);
  out.push(`<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">p99 latency (ms)</text>`);
  if (limit) {
    out.push(`<line class="limit" x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${num(y(limit))}" y2="${num(y(limit))}" stroke="#888" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${MARGIN.left + plotW - 4}" y="${num(y(limit) - 5)}" text-anchor="end" fill="#666">p99 limit ${limit} ms</text>`);
  }
  // One line per target, then its dots.
  all.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const pts = s.points.map((p) => `${num(x(p.rate))},${num(y(p.p99))}`).join(' ');
    out.push(`<g class="series" data-target="${esc(s.target)}">`);
    out.push(`<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const p of s.points) {
      const cx = num(x(p.rate));
      const cy = num(y(p.p99));
      const title = `<title>${esc(s.target)}: ${p.rate} msg/s, p99 ${p.p99.toFixed(1)} ms${p.complete ? '' : ', messages lost'}</title>`;
      if (!p.complete) {
        out.push(`<path d="M${num(x(p.rate) - 5)} ${num(y(p.p99) - 5)}l10 10m0 -10l-10 10" stroke="${colour}" stroke-width="2">${title}</path>`);
      } else {
        out.push(`<circle cx="${cx}" cy="${cy}" r="4" fill="${p.pass ? colour : '#fff'}" stroke="${colour}" stroke-width="2">${title}</circle>`);
      }
    }
    out.push('</g>');
    const ly = MARGIN.top + 12 + i * 20;
    const lx = MARGIN.left + plotW + 16;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 28}" y="${ly + 4}">${esc(s.target)}</text>`);
  });
  const ly = MARGIN.top + 12 + all.length * 20 + 14;
  const lx = MARGIN.left + plotW + 16;
  out.push(`<text x="${lx}" y="${ly}" fill="#555">● passed  ○ p99 over limit</text>`);
  out.push(`<text x="${lx}" y="${ly + 16}" fill="#555">✕ messages lost</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
