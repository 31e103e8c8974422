import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Client, type ChannelMessage } from '@herald/client';
import { eventually, freePort, freeRange, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { getStatus, startBalancer, type BalancerProcess } from './helpers/balancer.js';

/** Subscribers per test: about 20 per worker, enough that an unpaced drain would break the rate bound below. */
const SUBSCRIBERS = 60;
/** HERALD_DRAIN_MS of workers and balancer. */
const DRAIN_MS = 2000;
/** Pause between two drain batches (packages/server/src/drain.ts). */
const BATCH_INTERVAL_MS = 50;
/** Window over which reconnect rates are measured: shorter than any drain's spread (1 s here). */
const RATE_WINDOW_MS = 200;

/**
 * The closes per second of a worker draining `connections` over `spreadMs` in batches every
 * 50 ms (packages/server/src/drain.ts): the rate every drain (worker SIGTERM, balancer drain
 * request) runs at. A worker's own drain spreads over half its HERALD_DRAIN_MS, and so does the
 * balancer's drain request (WORKER_SPREAD_SHARE).
 */
function drainBatchRate(connections: number, spreadMs: number): number {
  const batches = Math.max(1, Math.floor(spreadMs / BATCH_INTERVAL_MS));
  return (Math.ceil(connections / batches) * 1000) / BATCH_INTERVAL_MS;
}

/** Highest number of `times` within any `windowMs`, as a rate per second. */
function peakRate(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! >= windowMs) i++;
    peak = Math.max(peak, j - i + 1);
  }
  return (peak * 1000) / windowMs;
}

/**
 * Reconnecting @herald/client subscribers of one history channel and a publisher with sequence
 * numbers, all through `url`, recording what a deploy must not break: every message by offset
 * (de-duplication by offset, as the SDK's app would), the close code of every established
 * connection that ended, and every reconnect with the worker it landed on.
 */
async function startFleet(url: string, clients: Client[]) {
  const channel = 'room:deploy';
  const closeCodes: number[] = [];
  /** Per subscriber: offset → message. */
  const received: Array<Map<number, ChannelMessage>> = [];
  const reconnects: Array<{ node: string; at: number }> = [];
  const options = { WebSocket, minReconnectDelay: 100, maxReconnectDelay: 2000 };
  const fleet = Array.from({ length: SUBSCRIBERS }, (_, i) => {
    const c = new Client(url, { ...options, params: { sid: `sub${i}` } });
    c.on('error', () => {});
    // Closes of established connections only: failed attempts (503 while the balancer drains,
    // refused while it restarts) are not connections dropped.
    c.on('state', (e: { oldState: string; newState: string; code?: number }) => {
      if (e.oldState === 'connected' && e.newState === 'reconnecting') closeCodes.push(e.code ?? -1);
    });
    let welcomed = false;
    c.on('welcome', (w: { node: string }) => {
      if (welcomed) reconnects.push({ node: w.node, at: Date.now() });
      welcomed = true;
    });
    const byOffset = new Map<number, ChannelMessage>();
    received.push(byOffset);
    const sub = c.subscribe(channel, {
      onMessage: (m) => {
        if (m.offset !== undefined) byOffset.set(m.offset, m);
      },
    });
    clients.push(c);
    c.connect();
    return { c, sub };
  });
  // Subscribed (acked), not just connected: a message published before would not be theirs.
  await Promise.all(fleet.map(({ sub }) => sub.ready()));
  const subs = fleet.map(({ c }) => c);
  const pub = new Client(url, { ...options, params: { sid: 'pub' } });
  pub.on('error', () => {});
  clients.push(pub);
  pub.connect();
  await pub.ready();

  const acked = new Map<number, number>(); // seq -> offset
  let seq = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      const n = ++seq;
      try {
        const ack = await pub.publish(channel, { n });
        if (ack.offset !== undefined) acked.set(n, ack.offset);
      } catch {
        // Not acked (timeout while reconnecting): not counted as sent.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  return {
    subs,
    reconnects,
    /** Stops the publisher (idempotent; finish() does it too). */
    async stop(): Promise<void> {
      publishing = false;
      await publisher;
    },
    /** Connections per worker now (the drain rate of the next drain depends on it). */
    perWorker(): Map<string, number> {
      const m = new Map<string, number>();
      for (const c of [...subs, pub]) if (c.welcome) m.set(c.welcome.node, (m.get(c.welcome.node) ?? 0) + 1);
      return m;
    },
    /** Stops publishing, then checks: nothing lost, nothing duplicated after de-dup by offset, every close a 1001. */
    async finish(): Promise<void> {
      await eventually(() => expect(subs.every((c) => c.state === 'connected')).to.equal(true), { timeout: 20_000 });
      publishing = false;
      await publisher;
      expect(acked.size).to.be.greaterThan(40);
      const offsets = [...acked.values()];
      await eventually(
        () => {
          for (const byOffset of received) for (const o of offsets) expect(byOffset.has(o), `offset ${o}`).to.equal(true);
        },
        { timeout: 15_000 },
      );
      for (const byOffset of received) {
        const seqs = [...byOffset.values()].map((m) => (m.data as { n: number }).n);
        expect(new Set(seqs).size, 'one offset per message').to.equal(seqs.length);
      }
      expect(closeCodes.length, 'every subscriber was moved at least once').to.be.at.least(SUBSCRIBERS);
      expect(closeCodes.filter((c) => c !== 1001), `close codes ${closeCodes.join(',')}`).to.deep.equal([]);
    },
  };
}

type Fleet = Awaited<ReturnType<typeof startFleet>>;

/**
 * Asserts the reconnects that landed on each worker since `from` peaked at no more than twice
 * the drain batch rate of the drain that caused them (`bound`), and returns the peaks for the log.
 */
function assertPaced(fleet: Fleet, from: number, bound: number, what: string): Record<string, number> {
  const byNode = new Map<string, number[]>();
  for (const r of fleet.reconnects) if (r.at >= from) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r.at]);
  const peaks = Object.fromEntries([...byNode].map(([node, times]) => [node, peakRate(times, RATE_WINDOW_MS)]));
  if (process.env.HERALD_TEST_VERBOSE) {
    const buckets = [...byNode].map(([node, times]) => `${node}: ${times.map((t) => Math.floor((t - from) / 100)).join(',')}`);
    console.log(`${what} (100 ms buckets):\n${buckets.join('\n')}`);
  }
  expect(byNode.size, `${what}: reconnects were measured`).to.be.at.least(1);
  for (const [node, peak] of Object.entries(peaks)) expect(peak, `${what}: peak reconnects/s on ${node} (bound ${bound})`).to.be.at.most(bound);
  return peaks;
}

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
        await eventually(() => expect(fleet.subs.every((c) => c.state === 'connected')).to.equal(true), { timeout: 20_000 });
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
