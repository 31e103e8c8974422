// Builds the browser bundle: an IIFE that sets globalThis.Herald (new Herald.Client(...)).
// Served by workers at /client.js; resolved through the package export "@herald/client/browser".
// Run after `tsc -b` (it bundles @herald/protocol from its dist/).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
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
