import { expect } from 'chai';
import { WebSocket } from 'ws';
import { Client, State, type ChannelMessage, type ClientOptions, type StateChange, type SubscribedEvent } from '@herald/client';
import { eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

/** Resolves with the next `state` change into `state`; rejects naming it after `ms`. */
function nextState(client: Client, state: State, ms = 15_000): Promise<StateChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`state ${state} not reached within ${ms} ms (now ${client.state})`));
    }, ms);
    const off = client.on('state', (change) => {
      if (change.newState !== state) return;
      clearTimeout(timer);
      off();
      resolve(change);
    });
  });
}

/**
 * The subscriber reaches worker 1 through a TCP proxy; when worker 1 goes away the proxy sends
 * new connections to worker 2, as a balancer would. History lives in Redis, so the client's
 * `since` resubscription on worker 2 recovers what was published meanwhile on worker 2.
 */
describe('client across workers (redis, 2 workers)', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let workers: WorkerProcess[];
  let proxy: TcpProxy;
  const clients: Client[] = [];

  beforeEach(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, HERALD_REDIS_PREFIX: 'herald-client:', HERALD_DRAIN_MS: '1000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    proxy = await TcpProxy.start(workers[0]!.port);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await proxy.close();
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop('SIGKILL');
  });

  const client = (url: string, options: ClientOptions = {}) => {
    const c = new Client(url, { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 300, ...options });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`after ${signal} of its worker, reconnects to the other worker and recovers every message exactly once`, async () => {
      const [w1, w2] = workers as [WorkerProcess, WorkerProcess];
      const channel = `room:${signal.toLowerCase()}`;
      const sub = client(`ws://127.0.0.1:${proxy.port}/ws`);
      const got: ChannelMessage[] = [];
      const subscribed: SubscribedEvent[] = [];
      const s = sub.subscribe(channel, { onMessage: (m) => got.push(m), onSubscribed: (e) => subscribed.push(e) });
      sub.connect();
      expect((await sub.ready()).node).to.equal(w1.node);
      await s.ready();
      const pub = client(`${w2.wsUrl}/ws`);
      pub.connect();
      await pub.ready();

      const total = 50;
      for (let n = 1; n <= total; n++) {
        await pub.publish(channel, { n });
        if (n === 10) {
          await eventually(() => expect(got).to.have.length(10)); // cross-worker delivery through Redis
          const lost = nextState(sub, State.Reconnecting);
          proxy.retarget(w2.port);
          const stopped = w1.stop(signal);
          expect((await lost).code).to.equal(signal === 'SIGTERM' ? 1001 : 1006);
          if (signal === 'SIGTERM') expect((await stopped).code).to.equal(0);
        }
      }
      await eventually(() => expect(got).to.have.length(total), { timeout: 15_000 });
      expect(sub.welcome?.node).to.equal(w2.node);
      expect(got.map((m) => (m.data as { n: number }).n)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
      expect(new Set(got.map((m) => m.epoch)).size).to.equal(1);
      expect(subscribed.at(-1)).to.include({ recovering: true, recovered: true });
      // Nothing arrives twice later either.
      await pub.publish(channel, { n: 'last' });
      await eventually(() => expect(got).to.have.length(total + 1));
    });
  }

  it('sees presence and direct messages across workers', async () => {
    const [w1, w2] = workers as [WorkerProcess, WorkerProcess];
    const alice = client(`${w1.wsUrl}/ws`, { params: { user: 'alice' } });
    const bob = client(`${w2.wsUrl}/ws`, { params: { user: 'bob' } });
    const directs: unknown[] = [];
    bob.on('direct', (d) => directs.push(d));
    alice.connect();
    bob.connect();
    await Promise.all([alice.subscribe('room:p').ready(), bob.subscribe('room:p').ready()]);
    await eventually(async () => expect((await alice.presence('room:p')).map((m) => m.user).sort()).to.deep.equal(['alice', 'bob']));
    await alice.send('bob', 'psst');
    await eventually(() => expect(directs).to.deep.equal([{ from: 'alice', data: 'psst' }]));
  });
});
