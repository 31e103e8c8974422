import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestClient, eventually, freePort, freeRange, startRedis, type TestRedis } from './helpers/index.js';
import { getStatus } from './helpers/balancer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PM2 = createRequire(import.meta.url).resolve('pm2/bin/pm2');

describe('pm2 ecosystem (real pm2, redis, balancer discovery)', function () {
  this.timeout(120_000);

  let redis: TestRedis;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let basePort: number;
  let balancerPort: number;

  function pm2(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [PM2, ...args], { cwd: ROOT, env, timeout: 60_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`pm2 ${args.join(' ')}: ${error.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
  }

  before(async () => {
    redis = await startRedis();
    home = mkdtempSync(join(tmpdir(), 'herald-pm2-'));
    basePort = await freeRange(4);
    balancerPort = await freePort();
    env = {
      ...process.env,
      PM2_HOME: home,
      HERALD_INSTANCES: '3',
      HERALD_WORKER_PORT: String(basePort),
      HERALD_BALANCER_PORT: String(balancerPort),
      HERALD_BALANCER_HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      HERALD_REDIS_PREFIX: 'pm2test:',
      HERALD_DRAIN_MS: '2000',
    };
  });

  after(async () => {
    try {
      if (home) await pm2('kill');
    } finally {
      await redis?.stop();
      if (home) rmSync(home, { recursive: true, force: true });
    }
  });

  it('starts workers and the balancer, reaches a worker through it, and scales up without a restart', async () => {
    await pm2('start', 'ecosystem.config.js');
    type Proc = { name: string; pm2_env: { status: string; PORT?: number | string; restart_time: number; exec_mode: string; kill_timeout: number; wait_ready: boolean } };
    const list = JSON.parse(await pm2('jlist')) as Proc[];
    for (const p of list) {
      expect(p.pm2_env.exec_mode, p.name).to.equal('fork_mode');
      expect(p.pm2_env.wait_ready, p.name).to.equal(true);
      // Above HERALD_DRAIN_MS (2000 here): the drain ends before pm2 would SIGKILL.
      expect(p.pm2_env.kill_timeout, p.name).to.be.above(2000);
    }
    expect(list.filter((p) => p.name === 'herald-worker')).to.have.length(3);
    expect(list.filter((p) => p.name === 'herald-balancer')).to.have.length(1);
    expect(list.every((p) => p.pm2_env.status === 'online')).to.equal(true);
    const ports = list.filter((p) => p.name === 'herald-worker').map((p) => Number(p.pm2_env.PORT)).sort();
    expect(ports).to.deep.equal([basePort, basePort + 1, basePort + 2]);

    await eventually(async () => expect((await getStatus(balancerPort)).healthy).to.equal(3), { timeout: 20_000, interval: 100 });
    const c = await TestClient.open(`ws://127.0.0.1:${balancerPort}/ws?sid=pm2`);
    const status = await getStatus(balancerPort);
    expect(status.workers.map((w) => w.node)).to.include(c.welcome!.node);
    await c.close();

    const balancerPid = (JSON.parse(await pm2('jlist')) as Array<{ name: string; pid: number }>).find((p) => p.name === 'herald-balancer')!.pid;
    await pm2('scale', 'herald-worker', '4');
    await eventually(async () => {
      const s = await getStatus(balancerPort);
      expect(s.healthy).to.equal(4);
      expect(s.workers.map((w) => w.address)).to.include(`127.0.0.1:${basePort + 3}`);
    }, { timeout: 20_000, interval: 100 });
    const after = JSON.parse(await pm2('jlist')) as Array<{ name: string; pid: number; pm2_env: { restart_time: number } }>;
    const balancer = after.find((p) => p.name === 'herald-balancer')!;
    // Found by discovery: the balancer was neither restarted nor replaced.
    expect(balancer.pid).to.equal(balancerPid);
    expect(balancer.pm2_env.restart_time).to.equal(0);
    // Keys now reach all four workers.
    const nodes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`http://127.0.0.1:${balancerPort}/readyz?sid=k${i}`);
      nodes.add(((await r.json()) as { node: string }).node);
    }
    expect(nodes.size).to.equal(4);
  });
});
