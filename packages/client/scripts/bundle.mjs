// Builds the browser bundle: an IIFE that sets globalThis.Herald (new Herald.Client(...)).
// Served by workers at /client.js; resolved through the package export "@herald/client/browser".
// Run after `tsc -b` (it bundles @herald/protocol from its dist/).
// Skipped when the bundle is newer than every file that went into it (esbuild's metafile of the
// last build lists them), so `npm start` on an unchanged tree does not rebuild it.
import { build } from 'esbuild';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = join(root, 'dist/browser/herald.js');
const metafile = join(root, 'dist/browser/herald.meta.json');

function upToDate() {
  if (!existsSync(outfile) || !existsSync(metafile)) return false;
  const built = statSync(outfile).mtimeMs;
  const inputs = [...Object.keys(JSON.parse(readFileSync(metafile, 'utf8')).inputs).map((f) => join(root, f)), fileURLToPath(import.meta.url)];
  return inputs.every((f) => existsSync(f) && statSync(f).mtimeMs <= built);
}

if (upToDate()) process.exit(0);
const result = await build({
  metafile: true,
  absWorkingDir: root,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/browser/herald.js',
  bundle: true,
  format: 'iife',
  globalName: 'Herald',
  platform: 'browser',
  // Private class fields (#x) stay native: every browser that has WebSocket + ES2022 runs it.
  target: ['es2022'],
  minify: false,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: '/* @herald/client browser bundle: globalThis.Herald */' },
});
writeFileSync(metafile, JSON.stringify(result.metafile));
// esbuild leaves an unchanged output file alone; its mtime must still say "built now".
const now = new Date();
utimesSync(outfile, now, now);
