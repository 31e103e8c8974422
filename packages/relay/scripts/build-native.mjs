#!/usr/bin/env node
/**
 * Builds the native relay (native/relay.c → build/Release/herald_relay.node) with npm's bundled
 * node-gyp, unless the built file is newer than its sources. The relay is optional: when it
 * cannot be built (no C compiler, not Linux, no Node headers) this prints why and exits 0, and
 * herald-balancer keeps open tunnels on Node's stream pipes (HERALD_RELAY=auto).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const output = join(root, 'build', 'Release', 'herald_relay.node');
const sources = ['native/relay.c', 'binding.gyp'].map((f) => join(root, f));

const mtime = (file) => statSync(file).mtimeMs;
if (existsSync(output) && sources.every((source) => mtime(source) <= mtime(output))) process.exit(0);

function skip(reason) {
  console.warn(`@herald/relay: native relay not built (${reason}); herald-balancer will relay tunnels in JavaScript`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`${process.platform} is not supported, Linux only`);
// npm tells scripts where its bundled node-gyp is; outside npm, `node-gyp` must be on PATH.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
// Use the headers installed with this Node (…/include/node) unless npm names a nodedir: node-gyp
// would otherwise download them, which fails offline.
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const result = spawnSync(command, [...args, 'rebuild'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (result.error) skip(result.error.message);
if (result.status !== 0) {
  const lines = result.stderr.trim().split('\n');
  skip(`node-gyp failed: ${lines.filter((l) => /error/i.test(l)).slice(0, 3).join(' | ') || lines.at(-1)}`);
}
