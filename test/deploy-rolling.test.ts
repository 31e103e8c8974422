import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@herald/client';
import { eventually, freePort, freeRange, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { getStatus, startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { assertPaced, drainBatchRate, startFleet, type Fleet } from './helpers/rolling-fleet.js';

/** HERALD_DRAIN_MS of workers and balancer. */
const DRAIN_MS = 2000;

/**
 * Issue 12 item 5: rolling restarts of every worker (SIGTERM, then a new one, as compose does;
 * and `pm2 reload`) and of the balancer, with reconnecting clients subscribed to a history channel
 * and a publisher running: every acked message reaches every subscriber exactly once after
 * de-duplication by offset, no connection is dropped without 1001, and the reconnects each worker
 * takes peak at no more than twice the drain batch rate (measured over 200 ms windows; an
 * unpaced drain of a worker's ~20 connections would put ~10 on each other worker at once).
 */
describe('rolling deploy: workers one by one, then the balancer (redis, 3 workers, @herald/client)', function () {
  this.timeout(180_000);
  let redis: TestRedis;
  const clients: Client[] = [];
  const fleets: Fleet[] = [];
  const prefix = `roll-${process.pid}:`;

  beforeEach(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(fleets.splice(0).map((f) => f.stop()));
    for (const c of clients.splice(0)) c.close();
    await redis?.stop();
  });

  describe('processes started by the test (SIGTERM and start, as compose does)', () => {
    let workers: WorkerProcess[] = [];
    let balancer: BalancerProcess | undefined;
    afterEach(async () => {
      await balancer?.stop('SIGKILL');
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    });

    it('loses nothing, duplicates nothing, every close is a 1001, reconnects paced', async () => {
      const workerEnv = () => ({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: String(DRAIN_MS), HERALD_LEASE_MS: '3000' });
      workers = await Promise.all([0, 1, 2].map(() => startWorker(workerEnv())));
      const port = await freePort();
      const balancerEnv = { PORT: String(port), REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: String(DRAIN_MS), HERALD_BALANCER_ID: 'b1' };
      balancer = await startBalancer(balancerEnv);
      await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
      const fleet = await startFleet(`ws://127.0.0.1:${port}/ws`, clients);
      fleets.push(fleet);
      const log: string[] = [];

      for (let i = 0; i < 3; i++) {
        const old = workers[i]!;
        const n = fleet.perWorker().get(old.node) ?? 0;
        const from = Date.now();
        expect(await old.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
        workers[i] = await startWorker(workerEnv());
        await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
        const bound = 2 * drainBatchRate(n, DRAIN_MS / 2);
        log.push(`worker ${i} (${n} conns, bound ${bound}/s): ${JSON.stringify(assertPaced(fleet, from, bound, `worker ${i} restart`))}`);
      }
      const most = Math.max(...fleet.perWorker().values());
      const from = Date.now();
      expect(await balancer.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
      balancer = await startBalancer(balancerEnv);
      await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
      await fleet.finish();
      const bound = 2 * drainBatchRate(most, DRAIN_MS / 2);
      log.push(`balancer (${most} conns on the busiest worker, bound ${bound}/s): ${JSON.stringify(assertPaced(fleet, from, bound, 'balancer restart'))}`);
      if (process.env.HERALD_TEST_VERBOSE) console.log(log.join('\n'));
    });
  });

  describe('pm2 (ecosystem.config.js: pm2 reload of the workers, then of the balancer)', () => {
    const ROOT = fileURLToPath(new URL('..', import.meta.url));
    const PM2 = createRequire(import.meta.url).resolve('pm2/bin/pm2');
    let home: string;
    let env: NodeJS.ProcessEnv;

    const pm2 = (...args: string[]) =>
      new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [PM2, ...args], { cwd: ROOT, env, timeout: 90_000 }, (error, stdout, stderr) => {
          if (error) reject(new Error(`pm2 ${args.join(' ')}: ${error.message}\n${stdout}\n${stderr}`));
          else resolve(stdout);
        });
      });

    afterEach(async () => {
      if (home) {
        await pm2('kill').catch(() => undefined);
        rmSync(home, { recursive: true, force: true });
      }
    });

    it('loses nothing, duplicates nothing, every close is a 1001, reconnects paced', async () => {
      home = mkdtempSync(join(tmpdir(), 'herald-pm2-roll-'));
      const basePort = await freeRange(3);
      const balancerPort = await freePort();
      env = {
        ...process.env,
        PM2_HOME: home,
        HERALD_INSTANCES: '3',
        HERALD_WORKER_PORT: String(basePort),
        HERALD_BALANCER_PORT: String(balancerPort),
        HERALD_BALANCER_HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        HERALD_REDIS_PREFIX: prefix,
        HERALD_DRAIN_MS: String(DRAIN_MS),
      };
      await pm2('start', 'ecosystem.config.js');
      await eventually(async () => expect((await getStatus(balancerPort)).healthy).to.equal(3), { timeout: 30_000, interval: 100 });
      const fleet = await startFleet(`ws://127.0.0.1:${balancerPort}/ws`, clients);
      fleets.push(fleet);

      const most = () => Math.max(...fleet.perWorker().values());
      type Proc = { name: string; pm_id: number; pid: number; pm2_env: { restart_time: number } };
      const list = async () => (JSON.parse(await pm2('jlist')) as Proc[]).filter((p) => p.name === 'herald-worker');
      // `pm2 reload` of each worker in turn (pm2 waits for the new process's `ready`), so the
      // drain rate is known: it follows from the connections the reloaded worker holds then.
      const workerPeaks: Record<string, number>[] = [];
      for (const { pm_id, pid } of await list()) {
        const held = [...fleet.perWorker()].find(([node]) => node.includes(`-${pid}-`))?.[1] ?? 0;
        const from = Date.now();
        await pm2('reload', String(pm_id));
        await eventually(async () => expect((await getStatus(balancerPort)).healthy).to.equal(3), { timeout: 30_000, interval: 100 });
        await fleet.settled();
        workerPeaks.push(assertPaced(fleet, from, 2 * drainBatchRate(held, DRAIN_MS / 2), `pm2 reload ${pm_id} (${held} connections)`));
      }
      expect((await list()).map((p) => p.pm2_env.restart_time)).to.deep.equal([1, 1, 1]);

      const n = most();
      const from = Date.now();
      await pm2('reload', 'herald-balancer');
      await eventually(async () => expect((await getStatus(balancerPort)).healthy).to.equal(3), { timeout: 30_000, interval: 100 });
      await fleet.finish();
      const balancerPeaks = assertPaced(fleet, from, 2 * drainBatchRate(n, DRAIN_MS / 2), 'pm2 reload herald-balancer');
      if (process.env.HERALD_TEST_VERBOSE) console.log(JSON.stringify({ workerPeaks, balancerPeaks }));
    });
  });
});
