import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { spawn } from 'node:child_process';
import { Child, eventually } from './helpers/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['protocol', 'shared', 'relay', 'client', 'server', 'balancer', 'bench'];
const listening = (l: string) => l.includes('"msg":"listening"');
const portOf = (line: string) => (JSON.parse(line) as { port: number }).port;

/**
 * Herald outside its repository (issue 15): every package is packed with `npm pack` (prepack
 * builds it), the tarballs are installed into a scratch app in os.tmpdir() (third-party
 * dependencies come from the registry), and the app uses them as a user would: bins through
 * `npx`, the client README example, a browser bundle. Slow (an `npm install`): about a minute.
 */
describe('packages: packed, installed outside the repository (slow, npm registry)', function () {
  this.timeout(240_000);
  let app: string;
  const children: Child[] = [];

  before(async () => {
    app = mkdtempSync(join(tmpdir(), 'herald-app-'));
    const packs = join(app, 'packs');
    mkdirSync(packs);
    await run('npm', ['pack', '--silent', '--pack-destination', packs, ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`])], { cwd: ROOT, maxBuffer: 1 << 24 });
    const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz'));
    expect(tarballs).to.have.length(PACKAGES.length);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', ...tarballs.map((t) => `./packs/${t}`), 'ws', 'esbuild'], { cwd: app, maxBuffer: 1 << 24 });
  });

  afterEach(async () => {
    // npx runs the bin in a child of its own: signal the whole process group.
    await Promise.all(
      children.splice(0).map(async (c) => {
        if (c.proc.exitCode === null) process.kill(-c.pid, 'SIGTERM');
        await c.exited;
      }),
    );
  });

  after(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  /** `npx <bin>` in the app, in a process group of its own (see afterEach). */
  const cwdNpx = (name: string, bin: string, env: NodeJS.ProcessEnv = {}) => {
    const proc = spawn('npx', ['--no-install', bin], { cwd: app, detached: true, env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const child = new Child(proc, name);
    children.push(child);
    return child;
  };

  it('each tarball has its dist, its bins and engines; the balancer does not pull in ws, jose, prom-client or @herald/client', () => {
    for (const p of PACKAGES) {
      const pkg = JSON.parse(readFileSync(join(app, 'node_modules', '@herald', p, 'package.json'), 'utf8')) as { engines?: unknown; bin?: Record<string, string>; types?: string };
      expect(pkg.engines, p).to.deep.equal({ node: '>=20.19' });
      expect(existsSync(join(app, 'node_modules', '@herald', p, pkg.types ?? 'dist/index.d.ts')), `${p} types`).to.equal(true);
      for (const bin of Object.values(pkg.bin ?? {})) expect(existsSync(join(app, 'node_modules', '@herald', p, bin)), `${p} ${bin}`).to.equal(true);
    }
    const balancer = JSON.parse(readFileSync(join(app, 'node_modules', '@herald', 'balancer', 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    const deps = Object.keys({ ...balancer.dependencies, ...balancer.optionalDependencies });
    expect(deps).to.not.include.members(['ws', 'jose', 'prom-client', '@herald/client', '@herald/server']);
  });

  it('runs the client README example in Node against `npx herald-worker`', async () => {
    const worker = cwdNpx('worker', 'herald-worker');
    const port = portOf(await worker.waitForLine(listening, 30_000));
    const readme = readFileSync(join(app, 'node_modules', '@herald', 'client', 'README.md'), 'utf8');
    const example = /## Node example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)![1]!.replace('ws://127.0.0.1:8080/ws', `ws://127.0.0.1:${port}/ws`);
    writeFileSync(join(app, 'example.mts'), example);
    await run(join(app, 'node_modules', '.bin', 'esbuild'), ['example.mts', '--format=esm', '--outfile=example.mjs'], { cwd: app });
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, timeout: 20_000 });
    expect(stdout).to.match(/published at offset \d+/);
    expect(stdout).to.include("user: 'alice'");
  });

  it('bundles @herald/client for the browser with esbuild', async () => {
    writeFileSync(join(app, 'browser.js'), "import { Client } from '@herald/client';\nglobalThis.client = new Client('/ws');\n");
    await run(join(app, 'node_modules', '.bin', 'esbuild'), ['browser.js', '--bundle', '--platform=browser', '--format=iife', '--outfile=bundle.js'], { cwd: app });
    const bundle = readFileSync(join(app, 'bundle.js'), 'utf8');
    expect(bundle).to.include('subscribe');
    expect(bundle).to.not.match(/require\(["']ws["']\)/);
  });

  it('runs `npx herald-balancer` in front of two `npx herald-worker`s; a ws client crosses it', async () => {
    const workers = [cwdNpx('w1', 'herald-worker', { NODE_ID: 'w1' }), cwdNpx('w2', 'herald-worker', { NODE_ID: 'w2' })];
    const ports = await Promise.all(workers.map(async (w) => portOf(await w.waitForLine(listening, 30_000))));
    const balancer = cwdNpx('balancer', 'herald-balancer', { HERALD_WORKERS: ports.map((p) => `127.0.0.1:${p}`).join(','), HERALD_HEALTH_INTERVAL_MS: '100' });
    const port = portOf(await balancer.waitForLine(listening, 30_000));
    const ws = await eventually(
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(`ws://127.0.0.1:${port}/echo?sid=a`);
          socket.once('open', () => resolve(socket)).once('error', reject);
        }),
    );
    ws.send('through the balancer');
    const echo = await new Promise<Buffer>((resolve) => ws.once('message', (data) => resolve(data as Buffer)));
    expect(echo.toString()).to.equal('through the balancer');
    ws.close();
  });

  it('runs `npx herald-bench --help`', async () => {
    const { stdout } = await run('npx', ['--no-install', 'herald-bench', '--help'], { cwd: app, timeout: 30_000 });
    expect(stdout).to.match(/herald-bench/i).and.to.match(/--scenarios/);
  });
});
