import { expect } from 'chai';
import { WebSocket } from 'ws';
import { Client, type ChannelMessage } from '@herald/client';
import { eventually, freePort, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';

/**
 * Issue 12 item 5: a rolling restart of every worker (SIGTERM, then a new one, as compose does)
 * and a balancer restart, with reconnecting clients subscribed to a history channel and a
 * publisher running: every acked message reaches every subscriber exactly once (after
 * de-duplication by offset), and no connection is dropped without 1001.
 */
describe('rolling deploy: workers one by one, then the balancer (redis, 3 workers, @herald/client)', function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;
  const clients: Client[] = [];
  const prefix = `roll-${process.pid}:`;
  const workerEnv = () => ({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' });

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    await balancer?.stop('SIGKILL');
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis?.stop();
  });

  it('loses nothing, duplicates nothing, and every close is a 1001', async () => {
    workers = await Promise.all([0, 1, 2].map(() => startWorker(workerEnv())));
    const port = await freePort();
    const balancerEnv = { PORT: String(port), REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: '2000', HERALD_BALANCER_ID: 'b1' };
    balancer = await startBalancer(balancerEnv);
    await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
    const url = `ws://127.0.0.1:${port}/ws`;
    const channel = 'room:deploy';
    const closeCodes: number[] = [];
    const closedAt: number[] = [];
    const received: Array<Map<number, ChannelMessage>> = [];
    const subs = Array.from({ length: 12 }, (_, i) => {
      const c = new Client(url, { WebSocket, params: { sid: `sub${i}` }, minReconnectDelay: 50, maxReconnectDelay: 500 });
      c.on('error', () => {});
      // Closes of established connections only: failed attempts (503 while the balancer drains,
      // refused while it restarts) are not connections dropped.
      c.on('state', (e: { oldState: string; newState: string; code?: number }) => {
        if (e.oldState === 'connected' && e.newState === 'reconnecting') {
          closeCodes.push(e.code ?? -1);
          closedAt.push(Date.now());
        }
      });
      const byOffset = new Map<number, ChannelMessage>();
      received.push(byOffset);
      c.subscribe(channel, {
        onMessage: (m) => {
          if (m.offset !== undefined) byOffset.set(m.offset, m);
        },
      });
      clients.push(c);
      c.connect();
      return c;
    });
    await Promise.all(subs.map((c) => c.ready()));
    const pub = new Client(url, { WebSocket, params: { sid: 'pub' }, minReconnectDelay: 50, maxReconnectDelay: 500 });
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
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // Rolling restart of the workers: SIGTERM one, start its replacement, wait for the balancer.
    for (let i = 0; i < 3; i++) {
      const old = workers[i]!;
      expect(await old.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
      workers[i] = await startWorker(workerEnv());
      await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
    }
    // Balancer restart on the same port.
    expect(await balancer.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
    balancer = await startBalancer(balancerEnv);
    await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
    await eventually(() => expect(subs.every((c) => c.state === 'connected')).to.equal(true), { timeout: 10_000 });
    publishing = false;
    await publisher;
    expect(acked.size).to.be.greaterThan(20);

    const offsets = [...acked.values()];
    await eventually(
      () => {
        for (const byOffset of received) for (const o of offsets) expect(byOffset.has(o), `offset ${o}`).to.equal(true);
      },
      { timeout: 10_000 },
    );
    for (const byOffset of received) {
      const seqsSeen = [...byOffset.values()].map((m) => (m.data as { n: number }).n);
      expect(new Set(seqsSeen).size, 'one offset per message').to.equal(seqsSeen.length);
    }
    expect(closeCodes.length, 'every subscriber was moved at least once').to.be.at.least(12);
    expect(closeCodes.filter((c) => c !== 1001), `close codes ${closeCodes.join(',')}`).to.deep.equal([]);
    // Paced: a worker closes one connection per 50 ms batch here (its ~4 over 500 ms, half of
    // its 1 s drain; the balancer's drain: each worker its ~4 over 1 s). The three workers pace
    // independently, so up to 3 closes (4 with timer jitter) can meet in one 50 ms window; an
    // unpaced drain would close all 12 (balancer) or 4 (worker) within one.
    closedAt.sort((a, b) => a - b);
    let peak = 0;
    for (let i = 0, j = 0; j < closedAt.length; j++) {
      while (closedAt[j]! - closedAt[i]! > 50) i++;
      peak = Math.max(peak, j - i + 1);
    }
    expect(peak, 'closes within any 50 ms').to.be.at.most(5);
  });
});
