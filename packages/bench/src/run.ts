import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import type { BenchOptions } from './options.js';
import type { Context } from './context.js';
import { skippedRow, type Row } from './result.js';
import { fanoutPlot } from './plot.js';
import { formatNotes, formatTable, formatVerdict, type BenchReport } from './report.js';
import { echoScenario } from './scenarios/echo.js';
import { fanoutScenario } from './scenarios/fanout.js';
import { connsScenario } from './scenarios/conns.js';
import { proxyScenario } from './scenarios/proxy.js';
import { scaleScenario } from './scenarios/scale.js';
import { transportsScenario } from './scenarios/transports.js';
import { jitterScenario } from './scenarios/jitter.js';
import { deployScenario } from './scenarios/deploy.js';

const SCENARIOS: Record<string, (ctx: Context) => Promise<Row[]>> = {
  echo: echoScenario,
  fanout: fanoutScenario,
  conns: connsScenario,
  proxy: proxyScenario,
  scale: scaleScenario,
  transports: transportsScenario,
  jitter: jitterScenario,
  deploy: deployScenario,
};

/**
 * Runs the selected scenarios one after another (a failing one is reported as a row, the
 * others still run), prints the table and, unless `write` is false, writes the JSON file
 * `<outDir>/bench-<time>.json` and `<outDir>/latest.json` (with `plot`, also `bench-<time>.svg` and
 * `latest.svg`).
 */
export async function runBench(opts: BenchOptions, out: { write?: boolean; log?: (line: string) => void } = {}): Promise<BenchReport> {
  const log = out.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const ctx: Context = {
    opts,
    progress: (message) => log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${message}`),
  };
  const report: BenchReport = {
    startedAt,
    durationSec: 0,
    machine: { cpus: opts.cpus, node: process.version, platform: `${process.platform} ${process.arch}`, loadavg: loadavg() },
    options: { ...opts },
    rows: [],
  };
  for (const name of opts.scenarios) {
    ctx.progress(`=== ${name}`);
    try {
      report.rows.push(...(await SCENARIOS[name]!(ctx)));
    } catch (err) {
      ctx.progress(`${name}: FAILED: ${(err as Error).stack ?? err}`);
      report.rows.push(skippedRow(name, '(scenario)', `failed: ${(err as Error).message.split('\n')[0]}`));
    }
  }
  report.durationSec = (performance.now() - t0) / 1000;
  log('');
  log(formatTable(report.rows, opts.cpus));
  const verdict = formatVerdict(report.rows);
  if (verdict) log(verdict);
  log(formatNotes(report));
  if (out.write !== false) {
    mkdirSync(opts.outDir, { recursive: true });
    const json = JSON.stringify(report, null, 2);
    const file = join(opts.outDir, `bench-${startedAt.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, json);
    writeFileSync(join(opts.outDir, 'latest.json'), json);
    log(`results: ${file} (total ${report.durationSec.toFixed(0)} s)`);
    const svg = opts.plot ? fanoutPlot(report) : undefined;
    if (svg) {
      const plot = file.replace(/\.json$/, '.svg');
      writeFileSync(plot, svg);
      writeFileSync(join(opts.outDir, 'latest.svg'), svg);
      log(`plot: ${plot}`);
    } else if (opts.plot) {
      log('plot: nothing to plot (the fanout scenario did not run)');
    }
  }
  return report;
}
