import { expect } from 'chai';
import { Redis } from 'ioredis';
import { listLiveNodes } from '@herald/shared';
import { TestClient, eventually, freePort, startCluster, startRedis, startWorker, type TestCluster } from './helpers/index.js';

const FAST = { HERALD_LEASE_MS: '2000', HERALD_REDIS_COMMAND_TIMEOUT_MS: '500', HERALD_REDIS_PROBE_MS: '200' };

describe('cluster failures (redis, 3 workers)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let stopped = false;
  const clients: TestClient[] = [];
  const open = async (worker: number, query = '') => {
    const c = await TestClient.open(`${cluster.workers[worker]!.wsUrl}/ws${query}`);
    clients.push(c);
    return c;
  };
  const readyz = async (worker: number) => {
    const res = await fetch(`${cluster.workers[worker]!.url}/readyz`);
    return { status: res.status, body: (await res.json()) as { ready: boolean; reason?: string } };
  };
  const allReady = (want: boolean, timeout: number) =>
    eventually(async () => {
      for (let i = 0; i < 3; i++) expect((await readyz(i)).status).to.equal(want ? 200 : 503);
    }, { timeout, interval: 50 });

  beforeEach(async () => {
    cluster = await startCluster(3, FAST);
    stopped = false;
  });
  afterEach(async () => {
    // A SIGSTOPped Redis must go on, or it could not even be stopped.
    if (stopped) process.kill(cluster.redis.child.pid, 'SIGCONT');
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop();
  });

  it('keeps local delivery while Redis is down, answers unavailable, and recovers when it restarts', async () => {
    const alice = await open(0, '?user=alice');
    const bob = await open(0, '?user=bob');
    const carol = await open(1, '?user=carol');
    for (const c of [alice, bob, carol]) {
      await c.request({ type: 'subscribe', channel: 'nohist:x' });
      await c.request({ type: 'subscribe', channel: 'room:h' });
    }
    const port = cluster.redis.port;
    await cluster.redis.stop();
    await allReady(false, 5000);
    expect((await readyz(0)).body).to.deep.include({ ready: false, reason: 'broker unavailable' });
    expect((await fetch(`${cluster.workers[0]!.url}/healthz`)).status).to.equal(200);

    // Local delivery goes on; the publisher learns that other workers were not reached.
    const ack = await bob.request({ type: 'publish', channel: 'nohist:x', data: 'local' });
    expect(ack).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(await alice.waitFrame((f) => f.type === 'message' && f.data === 'local')).to.deep.include({ channel: 'nohist:x', from: 'bob' });
    expect(await bob.request({ type: 'publish', channel: 'room:h', data: 'h' })).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(await bob.request({ type: 'presence', channel: 'room:h' })).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(await bob.request({ type: 'send', user: 'carol', data: 1 })).to.deep.include({ type: 'error', code: 'unavailable' });
    // History reads (the position of a new subscription, a recovery) answer unavailable too, not internal.
    expect(await bob.request({ type: 'subscribe', channel: 'room:new' })).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(await bob.request({ type: 'subscribe', channel: 'room:new2', since: { offset: 1, epoch: 'e' } })).to.deep.include({ type: 'error', code: 'unavailable' });

    const t0 = Date.now();
    cluster.redis = await startRedis(port);
    await allReady(true, 5000);
    expect(Date.now() - t0).to.be.below(5000);
    // Subscriptions are back: carol's publish on w1 reaches w0 and the other way round.
    await carol.request({ type: 'publish', channel: 'nohist:x', data: 'back' });
    for (const c of [alice, bob]) await c.waitFrame((f) => f.type === 'message' && f.data === 'back');
    await alice.request({ type: 'publish', channel: 'room:h', data: 'after' });
    await carol.waitFrame((f) => f.type === 'message' && f.data === 'after');
    expect(carol.of('message').filter((f) => f.data === 'local')).to.have.length(0);
    // The restarted Redis is empty; the workers announced themselves and their presence again.
    const members = await eventually(async () => {
      const p = await carol.request({ type: 'presence', channel: 'room:h' });
      expect(p.members).to.have.length(3);
      return p.members;
    }, { timeout: 5000 });
    expect(members.map((m: { user: string }) => m.user).sort()).to.deep.equal(['alice', 'bob', 'carol']);
    expect(cluster.workers.every((w) => w.child.lines.some((l) => l.includes('broker: available -> unavailable')))).to.equal(true);
  });

  it('detects a killed subscriber connection and resubscribes within 2 s, losing no history message', async () => {
    const alice = await open(0, '?user=alice');
    await alice.request({ type: 'subscribe', channel: 'nohist:k' });
    await alice.request({ type: 'subscribe', channel: 'room:k' });
    const carol = await open(1, '?user=carol');
    await carol.request({ type: 'publish', channel: 'room:k', data: 0 });
    await alice.waitFrame((f) => f.type === 'message' && f.data === 0);
    const redis = new Redis(cluster.redis.url);
    redis.on('error', () => undefined);
    try {
      const killed = await redis.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      expect(killed).to.equal(3);
      const t0 = Date.now();
      // History messages published right away: live or through the gap fill, each arrives once, in order.
      const dave = await open(2);
      for (let i = 1; i <= 5; i++) dave.send({ type: 'publish', channel: 'room:k', data: i });
      let n = 0;
      await eventually(async () => {
        const data = `probe-${n++}`;
        await carol.request({ type: 'publish', channel: 'nohist:k', data });
        await alice.waitFrame((f) => f.type === 'message' && f.data === data, 100);
      }, { timeout: 2000, interval: 0 });
      expect(Date.now() - t0).to.be.below(2000);
      await alice.waitCount(() => alice.of('message', 'room:k').length, 6);
      await dave.request({ type: 'publish', channel: 'room:k', data: 'end' });
      await alice.waitFrame((f) => f.type === 'message' && f.data === 'end');
      expect(alice.of('message', 'room:k').map((f) => f.data)).to.deep.equal([0, 1, 2, 3, 4, 5, 'end']);
      expect(alice.of('message', 'room:k').map((f) => f.offset)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      redis.disconnect();
    }
  });

  it('detects a stopped (SIGSTOP) Redis with the probe and never hangs a publish', async () => {
    const alice = await open(0, '?user=alice');
    const bob = await open(0, '?user=bob');
    await alice.request({ type: 'subscribe', channel: 'nohist:s' });
    // The presence entry and the join are written after the ack; a presence read on the same
    // Redis connection answers only after they went through.
    await alice.waitFrame((f) => f.type === 'join');
    expect((await bob.request({ type: 'presence', channel: 'nohist:s' })).members).to.have.length(1);
    process.kill(cluster.redis.child.pid, 'SIGSTOP');
    stopped = true;
    const t0 = Date.now();
    // A publish sent while the probe has not noticed yet times out (command timeout 500 ms).
    const [plain, hist] = await Promise.all([
      bob.request({ type: 'publish', channel: 'nohist:s', data: 'during' }, 3000),
      bob.request({ type: 'publish', channel: 'room:s', data: 'during' }, 3000),
    ]);
    expect(plain).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(hist).to.deep.include({ type: 'error', code: 'unavailable' });
    expect(Date.now() - t0).to.be.below(2000);
    await alice.waitFrame((f) => f.type === 'message' && f.data === 'during');
    await allReady(false, 3000);
    expect(await bob.request({ type: 'publish', channel: 'room:s', data: 'x' }, 1000)).to.deep.include({ type: 'error', code: 'unavailable' });
    process.kill(cluster.redis.child.pid, 'SIGCONT');
    stopped = false;
    await allReady(true, 5000);
    expect(await bob.request({ type: 'publish', channel: 'room:s', data: 'x' })).to.deep.include({ type: 'ack' });
    // alice's subscription was restored on the new subscriber connection
    const carol = await open(2);
    await carol.request({ type: 'publish', channel: 'nohist:s', data: 'after' });
    await alice.waitFrame((f) => f.type === 'message' && f.data === 'after');
  });
});

describe('worker start without Redis (redis, 1 worker)', function () {
  this.timeout(60_000);

  it('listens unready while Redis is unreachable and becomes ready, announced, when it comes', async () => {
    const port = await freePort();
    const worker = await startWorker({ REDIS_URL: `redis://127.0.0.1:${port}`, NODE_ID: 'late', HERALD_DRAIN_MS: '500', ...FAST });
    const redis = await (async () => {
      try {
        const res = await fetch(`${worker.url}/readyz`);
        expect(res.status).to.equal(503);
        expect(await res.json()).to.deep.include({ reason: 'broker unavailable' });
        expect((await fetch(`${worker.url}/healthz`)).status).to.equal(200);
        return await startRedis(port);
      } catch (err) {
        await worker.stop('SIGKILL');
        throw err;
      }
    })();
    const raw = new Redis(redis.url);
    raw.on('error', () => undefined);
    try {
      await eventually(async () => expect((await fetch(`${worker.url}/readyz`)).status).to.equal(200), { timeout: 5000 });
      await eventually(async () => expect((await listLiveNodes(raw)).map((n) => [n.id, n.address])).to.deep.equal([['late', `127.0.0.1:${worker.port}`]]));
      const a = await TestClient.open(`${worker.wsUrl}/ws?user=a`);
      expect(await a.request({ type: 'subscribe', channel: 'room:1' })).to.deep.include({ type: 'ack', offset: 0 });
      expect(await a.request({ type: 'publish', channel: 'room:1', data: 1 })).to.deep.include({ type: 'ack', offset: 1 });
      await a.close();
    } finally {
      raw.disconnect();
      await worker.stop();
      await redis.stop();
    }
  });
});
