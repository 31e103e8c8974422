#!/usr/bin/env node
// `npm run dev`: one worker that restarts when the code changes. `tsc -b -w` recompiles a
// changed .ts file of any package into its dist/; `node --watch` restarts the worker when a
// file it loaded (its own dist/ and its packages' dist/) changes. Chosen over a watcher
// dependency: both ship with what the repository already uses. The browser bundle and the demo
// page are not watched: `npm run build` after changing packages/client or packages/server/web.
// Environment as for `npm start` (PORT, REDIS_URL, HERALD_*). Ctrl-C stops both.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// Everything built once (skips what is up to date), so the worker starts on fresh output.
const first = spawnSync(npm, ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
if (first.status !== 0) process.exit(first.status ?? 1);

const children = [
  spawn(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', '-w', '--preserveWatchOutput'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] }),
  spawn(process.execPath, ['--watch', 'packages/server/dist/bin/herald-worker.js'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] }),
];

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined))).then(() => process.exit(code));
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop(0));
// Either one ending on its own (tsc crashed, node --watch killed) ends the session.
for (const child of children) child.once('exit', (code) => stop(code ?? 1));
