// Builds the demo app into packages/server/dist/web/ (served by the worker at /): type-checks
// app.ts (tsc -p web), bundles it to app.js (esbuild, browser IIFE), copies index.html and style.css.
// The client library itself is not bundled here: the page loads it from /client.js.
// Skipped when every output is newer than every file that went into it (esbuild's metafile of
// the last build lists them), so `npm start` on an unchanged tree does not rebuild it.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
const out = fileURLToPath(new URL('../dist/web/', import.meta.url));
const copied = ['index.html', 'style.css'];
const outputs = [`${out}app.js`, ...copied.map((f) => `${out}${f}`)];
const metafile = `${out}app.meta.json`;

function upToDate() {
  if (![...outputs, metafile].every((f) => existsSync(f))) return false;
  const built = Math.min(...outputs.map((f) => statSync(f).mtimeMs));
  const bundled = Object.keys(JSON.parse(readFileSync(metafile, 'utf8')).inputs).map((f) => join(here, f));
  // app.ts imports only types from @herald/client: its declarations decide the type-check.
  const types = join(dirname(require.resolve('@herald/client')), 'index.d.ts');
  const inputs = [...bundled, types, ...copied.map((f) => `${here}${f}`), fileURLToPath(import.meta.url)];
  return inputs.every((f) => existsSync(f) && statSync(f).mtimeMs <= built);
}

if (upToDate()) process.exit(0);
// Type-check first (web/tsconfig.json: noEmit); the bundle below is esbuild's, which does not check.
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', here], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
await mkdir(out, { recursive: true });
const result = await build({
  absWorkingDir: here,
  entryPoints: ['app.ts'],
  outfile: `${out}app.js`,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  logLevel: 'warning',
  metafile: true,
});
await Promise.all(copied.map((f) => copyFile(`${here}${f}`, `${out}${f}`)));
writeFileSync(metafile, JSON.stringify(result.metafile));
// esbuild leaves an unchanged output file alone; its mtime must still say "built now".
const now = new Date();
for (const f of outputs) utimesSync(f, now, now);
