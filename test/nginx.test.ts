import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { TestClient, eventually, freePort, spawnChild, startWorker, type Child, type WorkerProcess } from './helpers/index.js';

const NGINX = '/usr/sbin/nginx';
const CONF = fileURLToPath(new URL('../nginx/nginx.conf', import.meta.url));

describe('nginx (real nginx, shipped config, 3 workers)', function () {
  this.timeout(60_000);

  let workers: WorkerProcess[] = [];
  let nginx: Child | undefined;
  let dir: string;
  let port: number;

  before(function () {
    if (!existsSync(NGINX)) this.skip(); // the nginx Debian package is not installed here
  });

  beforeEach(async () => {
    workers = await Promise.all([startWorker({ HERALD_DRAIN_MS: '2000' }), startWorker({ HERALD_DRAIN_MS: '2000' }), startWorker({ HERALD_DRAIN_MS: '2000' })]);
    dir = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
    port = await freePort();
    // The shipped config, with only the listen port substituted; upstream.conf is the test's own
    // (nginx resolves `include upstream.conf` next to the config file).
    const shipped = readFileSync(CONF, 'utf8');
    expect(shipped.match(/^\s*listen 80;$/gm)).to.have.length(1);
    writeFileSync(join(dir, 'nginx.conf'), shipped.replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${port};`));
    writeFileSync(join(dir, 'upstream.conf'), workers.map((w) => `server 127.0.0.1:${w.port} max_fails=1 fail_timeout=10s;\n`).join(''));
    nginx = spawnChild('nginx', NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`]);
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200), { timeout: 10_000, interval: 50 });
  });

  afterEach(async () => {
    await nginx?.stop('SIGTERM');
    nginx = undefined;
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  });

  const wsUrl = (path: string) => `ws://127.0.0.1:${port}${path}`;

  it('proxies WebSocket upgrades (text and binary stay as they are)', async () => {
    const ws = new WebSocket(wsUrl('/echo?sid=u'));
    ws.on('error', () => undefined);
    await once(ws, 'open');
    ws.send('hello nginx');
    const [text, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
    expect([text.toString(), isBinary]).to.deep.equal(['hello nginx', false]);
    ws.send(Buffer.from([1, 2, 3]));
    const [bin, binFlag] = (await once(ws, 'message')) as [Buffer, boolean];
    expect([[...bin], binFlag]).to.deep.equal([[1, 2, 3], true]);
    ws.close();
    await once(ws, 'close');
    const c = await TestClient.open(wsUrl('/ws?sid=u'));
    expect(workers.map((w) => w.node)).to.include(c.welcome!.node);
    await c.close();
  });

  it('keeps a sid on one worker and spreads sids over all three', async () => {
    const nodes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const sid = `n${i}`;
      const seen = new Set<string>();
      for (let j = 0; j < 3; j++) {
        const c = await TestClient.open(wsUrl(`/ws?sid=${sid}`));
        seen.add(c.welcome!.node);
        await c.close();
      }
      expect(seen.size, sid).to.equal(1);
      const http = (await (await fetch(`http://127.0.0.1:${port}/readyz?sid=${sid}`)).json()) as { node: string };
      expect(http.node).to.equal([...seen][0]);
      nodes.add(http.node);
    }
    expect(nodes.size).to.equal(3);
  });

  it('fails over after SIGKILL: the reconnect with the same sid reaches another worker', async () => {
    const first = await TestClient.open(wsUrl('/ws?sid=failover'));
    const victim = workers.find((w) => w.node === first.welcome!.node)!;
    await victim.stop('SIGKILL');
    expect((await first.closed).code).to.equal(1006);
    const second = await TestClient.open(wsUrl('/ws?sid=failover'));
    expect(second.welcome!.node).to.not.equal(victim.node);
    const third = await TestClient.open(wsUrl('/ws?sid=failover'));
    expect(third.welcome!.node).to.equal(second.welcome!.node);
    await Promise.all([second.close(), third.close()]);
  });

  it('moves clients of a draining worker elsewhere (its 503 goes to the next upstream)', async () => {
    const first = await TestClient.open(wsUrl('/ws?sid=drain'));
    const draining = workers.find((w) => w.node === first.welcome!.node)!;
    const exited = draining.stop('SIGTERM');
    expect((await first.closed).code).to.equal(1001);
    const again = await TestClient.open(wsUrl('/ws?sid=drain'));
    expect(again.welcome!.node).to.not.equal(draining.node);
    await again.close();
    expect((await exited).code).to.equal(0);
  });
});
