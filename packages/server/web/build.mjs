// Builds the demo app into packages/server/dist/web/ (served by the worker at /):
// app.ts -> app.js (esbuild, browser IIFE), index.html and style.css copied as they are.
// The client library itself is not bundled here: the page loads it from /client.js.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = fileURLToPath(new URL('../dist/web/', import.meta.url));

await mkdir(out, { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: ['app.ts'],
  outfile: `${out}app.js`,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  logLevel: 'warning',
});
await Promise.all(['index.html', 'style.css'].map((f) => copyFile(`${here}${f}`, `${out}${f}`)));
