#!/usr/bin/env node
import { parseOptions } from '../options.js';
import { runBench } from '../run.js';

let opts;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`herald-bench: ${(err as Error).message}\n(see herald-bench --help)\n`);
  process.exit(2);
}
const report = await runBench(opts, { log: (line) => process.stdout.write(`${line}\n`) });
process.exitCode = report.rows.some((r) => r.skipped?.startsWith('failed')) ? 1 : 0;
