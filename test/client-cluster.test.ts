import { expect } from 'chai';
import { WebSocket } from 'ws';
import { Client, State, type ChannelMessage, type ClientOptions, type SubscribedEvent } from '@herald/client';
import { eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { nodesForKeys, startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { nextState } from './helpers/client-state.js';


describe('client through the balancer (redis, 3 workers)', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let workers: WorkerProcess[];
  let balancer: BalancerProcess;
  const clients: Client[] = [];

  beforeEach(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' };
    workers = await Promise.all([startWorker(env), startWorker(env), startWorker(env)]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    await eventually(async () => expect((await balancer.status()).healthy).to.equal(3), { timeout: 10_000 });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await balancer.stop('SIGKILL');
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop('SIGKILL');
  });

  const client = (sid: string, options: ClientOptions = {}) => {
    const c = new Client(`${balancer.wsUrl}/ws`, { WebSocket, params: { sid }, minReconnectDelay: 50, maxReconnectDelay: 500, ...options });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };

  /** Two sids that the balancer sends to different workers. */
  const twoSids = async (): Promise<[string, string, Map<string, string>]> => {
    const keys = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const map = await nodesForKeys(balancer.url, keys);
    const a = keys[0]!;
    const b = keys.find((k) => map.get(k) !== map.get(a))!;
    return [a, b, map];
  };

  it('two clients on different workers see each other in presence and exchange direct messages', async () => {
    const [aSid, bSid] = await twoSids();
    const alice = client(aSid, { params: { sid: aSid, user: 'alice' } });
    const bob = client(bSid, { params: { sid: bSid, user: 'bob' } });
    const directs: unknown[] = [];
    bob.on('direct', (d) => directs.push(d));
    alice.connect();
    bob.connect();
    const [wa, wb] = await Promise.all([alice.ready(), bob.ready()]);
    expect(wa.node).to.not.equal(wb.node);
    await Promise.all([alice.subscribe('room:p').ready(), bob.subscribe('room:p').ready()]);
    await eventually(async () => expect((await alice.presence('room:p')).map((m) => m.user).sort()).to.deep.equal(['alice', 'bob']));
    await alice.send('bob', 'psst');
    await eventually(() => expect(directs).to.deep.equal([{ from: 'alice', data: 'psst' }]));
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`after ${signal} of its worker, lands on another worker and recovers every message exactly once`, async () => {
      const [subSid, pubSid, map] = await twoSids();
      const sub = client(subSid);
      const got: ChannelMessage[] = [];
      const subscribed: SubscribedEvent[] = [];
      const channel = `room:${signal}`;
      const s = sub.subscribe(channel, { onMessage: (m) => got.push(m), onSubscribed: (e) => subscribed.push(e) });
      sub.connect();
      const first = await sub.ready();
      expect(first.node).to.equal(map.get(subSid));
      await s.ready();
      const pub = client(pubSid);
      pub.connect();
      expect((await pub.ready()).node).to.not.equal(first.node);

      const victim = workers.find((w) => w.node === first.node)!;
      const total = 40;
      const lost = nextState(sub, State.Reconnecting);
      for (let n = 1; n <= total; n++) {
        await pub.publish(channel, { n });
        if (n === 10) {
          await eventually(() => expect(got).to.have.length(10));
          void victim.stop(signal);
          const change = await lost;
          expect(change.code).to.equal(signal === 'SIGTERM' ? 1001 : 1006);
        }
      }
      await eventually(() => expect(got).to.have.length(total), { timeout: 15_000 });
      expect(sub.state).to.equal(State.Connected);
      expect(sub.welcome?.node).to.not.equal(first.node);
      expect(got.map((m) => (m.data as { n: number }).n)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
      // Replayed messages come before the subscribe ack (docs/protocol.md), so the last of them can
      // be handled before the `subscribed` event that ends the recovery.
      await eventually(() => expect(subscribed.at(-1)).to.include({ recovering: true, recovered: true }));
    });
  }
});
