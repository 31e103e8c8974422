import { expect } from 'chai';
import { Redis } from 'ioredis';
import { listLiveNodes } from '@herald/shared';
import { TestClient, eventually, startCluster, type TestCluster } from './helpers/index.js';

describe('cluster (redis, 3 workers)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let redis: Redis;
  const clients: TestClient[] = [];
  const open = async (worker: number, query = '') => {
    const c = await TestClient.open(`${cluster.workers[worker]!.wsUrl}/ws${query}`);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    cluster = await startCluster(3, { HERALD_LEASE_MS: '2000' });
    redis = new Redis(cluster.redis.url, { lazyConnect: true });
    redis.on('error', () => undefined);
    await redis.connect();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    redis.disconnect();
    await cluster.stop();
  });

  it('announces every worker in the membership records', async () => {
    const nodes = await eventually(async () => {
      const n = await listLiveNodes(redis, cluster.prefix);
      expect(n).to.have.length(3);
      return n;
    });
    expect(nodes.map((n) => n.id).sort()).to.deep.equal(['w0', 'w1', 'w2']);
    for (const n of nodes) {
      const w = cluster.workers.find((x) => x.node === n.id)!;
      expect(n.address).to.equal(`127.0.0.1:${w.port}`);
      expect(n.heartbeat).to.be.at.least(n.started);
    }
    const ttl = await redis.pttl(`${cluster.prefix}node:w0`);
    expect(ttl).to.be.within(1, 2000);
  });

  it('delivers every message exactly once to each subscriber on every worker, in order', async () => {
    const subs = [await open(0), await open(1), await open(2), await open(1)];
    for (const s of subs) {
      await s.request({ type: 'subscribe', channel: 'room:all' });
      await s.request({ type: 'subscribe', channel: 'nohist:all' });
    }
    const pubs = [await open(0), await open(2)];
    const n = 20;
    for (let i = 1; i <= n; i++) {
      const p = pubs[i % 2]!;
      p.send({ type: 'publish', channel: 'room:all', data: i });
      p.send({ type: 'publish', channel: 'nohist:all', data: i });
    }
    // Markers: once the last one arrived, everything published before it (and any duplicate) has too.
    for (const p of pubs) await p.request({ type: 'publish', channel: 'room:all', data: 'end' });
    await pubs[0]!.request({ type: 'publish', channel: 'room:all', data: 'fin' });
    const range = (k: number) => Array.from({ length: k }, (_, i) => i + 1);
    for (const s of subs) {
      await s.waitFrame((f) => f.type === 'message' && f.data === 'fin');
      const hist = s.of('message', 'room:all');
      // Two publishers race, so the data order varies; the offset order must not.
      expect(hist.map((f) => f.offset)).to.deep.equal(range(n + 3));
      expect(hist.filter((f) => typeof f.data === 'number').map((f) => f.data).sort((a, b) => a - b)).to.deep.equal(range(n));
      const plain = s.of('message', 'nohist:all');
      expect(plain.map((f) => f.data).sort((a, b) => a - b)).to.deep.equal(range(n));
      expect(plain.every((f) => f.offset === undefined)).to.equal(true);
    }
    // Each worker subscribed in Redis exactly to the channels it has local subscribers for.
    const channels = (await redis.pubsub('CHANNELS', `${cluster.prefix}ch:*`)) as string[];
    expect(channels.sort()).to.deep.equal([`${cluster.prefix}ch:nohist:all`, `${cluster.prefix}ch:room:all`]);
    const counts = (await redis.pubsub('NUMSUB', `${cluster.prefix}ch:room:all`)) as Array<string | number>;
    expect(counts[1]).to.equal(3);
  });

  it('unsubscribes from Redis when the last local subscriber leaves', async () => {
    const a = await open(0);
    const b = await open(0);
    await a.request({ type: 'subscribe', channel: 'room:u' });
    await b.request({ type: 'subscribe', channel: 'room:u' });
    const numsub = async () => ((await redis.pubsub('NUMSUB', `${cluster.prefix}ch:room:u`)) as Array<string | number>)[1];
    expect(await numsub()).to.equal(1);
    await a.request({ type: 'unsubscribe', channel: 'room:u' });
    expect(await numsub()).to.equal(1);
    await b.close();
    await eventually(async () => expect(await numsub()).to.equal(0));
  });

  it('sends presence joins and leaves across workers and answers presence cluster-wide', async () => {
    const alice = await open(0, '?user=alice');
    await alice.request({ type: 'subscribe', channel: 'room:p' });
    const bob = await open(1, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'room:p' });
    expect(await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob')).to.deep.equal({ type: 'join', channel: 'room:p', user: 'bob', conn: bob.welcome!.conn });
    const carol = await open(2, '?user=carol');
    const p = await carol.request({ type: 'presence', channel: 'room:p' });
    expect(p.members).to.have.deep.members([
      { user: 'alice', conn: alice.welcome!.conn },
      { user: 'bob', conn: bob.welcome!.conn },
    ]);
    await bob.close();
    expect(await alice.waitFrame((f) => f.type === 'leave')).to.deep.equal({ type: 'leave', channel: 'room:p', user: 'bob', conn: bob.welcome!.conn });
    expect((await carol.request({ type: 'presence', channel: 'room:p' })).members).to.deep.equal([{ user: 'alice', conn: alice.welcome!.conn }]);
    expect(alice.of('join').filter((f) => f.user === 'bob')).to.have.length(1);
  });

  it('delivers direct messages to every connection of a user on other workers, once', async () => {
    const b1 = await open(1, '?user=bob');
    const b2 = await open(2, '?user=bob');
    const b3 = await open(0, '?user=bob');
    const alice = await open(0, '?user=alice');
    expect(await alice.request({ type: 'send', user: 'bob', data: { hi: 1 } })).to.deep.include({ type: 'ack' });
    expect(await alice.request({ type: 'send', user: 'bob', data: 'end' })).to.deep.include({ type: 'ack' });
    for (const b of [b1, b2, b3]) {
      await b.waitFrame((f) => f.type === 'direct' && f.data === 'end');
      expect(b.of('direct')).to.deep.equal([
        { type: 'direct', from: 'alice', data: { hi: 1 } },
        { type: 'direct', from: 'alice', data: 'end' },
      ]);
    }
    expect(alice.of('direct')).to.have.length(0);
  });

  it('recovers missed messages after reconnecting to a different worker', async () => {
    const pub = await open(0);
    const bob = await open(1, '?user=bob');
    const ack = await bob.request({ type: 'subscribe', channel: 'room:r' });
    for (let i = 1; i <= 2; i++) await pub.request({ type: 'publish', channel: 'room:r', data: i });
    await bob.waitCount(() => bob.of('message').length, 2);
    const last = bob.of('message').at(-1)!;
    await bob.close();
    for (let i = 3; i <= 5; i++) await pub.request({ type: 'publish', channel: 'room:r', data: i });
    const again = await open(2, '?user=bob');
    const resumed = await again.request({ type: 'subscribe', channel: 'room:r', since: { offset: last.offset, epoch: last.epoch } });
    expect(resumed).to.deep.include({ type: 'ack', offset: 5, epoch: ack.epoch, recovered: true });
    expect(again.of('message').map((f) => [f.offset, f.data])).to.deep.equal([[3, 3], [4, 4], [5, 5]]);
    // and it is live afterwards
    await pub.request({ type: 'publish', channel: 'room:r', data: 6 });
    await again.waitFrame((f) => f.type === 'message' && f.offset === 6);
    const stale = await open(0);
    expect(await stale.request({ type: 'subscribe', channel: 'room:r', since: { offset: 1, epoch: 'gone' } })).to.deep.include({ recovered: false, offset: 6 });
  });

  it('removes the members of a SIGKILLed worker and sends their leaves within the lease bound', async () => {
    const alice = await open(0, '?user=alice');
    await alice.request({ type: 'subscribe', channel: 'room:k' });
    const bob = await open(1, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'room:k' });
    await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
    const t0 = Date.now();
    await cluster.workers[1]!.stop('SIGKILL');
    // lease 2000 ms + sweep interval 500 ms, with margin for a loaded machine
    const leave = await alice.waitFrame((f) => f.type === 'leave', 6000);
    expect(leave).to.deep.equal({ type: 'leave', channel: 'room:k', user: 'bob', conn: bob.welcome!.conn });
    expect(Date.now() - t0).to.be.below(6000);
    expect((await alice.request({ type: 'presence', channel: 'room:k' })).members).to.deep.equal([{ user: 'alice', conn: alice.welcome!.conn }]);
    expect(alice.of('leave')).to.have.length(1);
    await eventually(async () => expect((await listLiveNodes(redis, cluster.prefix)).map((n) => n.id).sort()).to.deep.equal(['w0', 'w2']));
    expect(await redis.exists(`${cluster.prefix}pn:w1`, `${cluster.prefix}node:w1`)).to.equal(0);
  });

  it('hides the members of a dead worker as soon as its lease expires', async () => {
    const bob = await open(1, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'sweep:1' });
    const carol = await open(2);
    await eventually(async () => expect((await carol.request({ type: 'presence', channel: 'sweep:1' })).members).to.have.length(1));
    // Stop w0 and w2 sweeping by holding the sweep lock, then kill w1: only the lease filter can hide bob.
    await redis.set(`${cluster.prefix}sweep-lock`, 'test', 'PX', 60_000);
    await cluster.workers[1]!.stop('SIGKILL');
    await eventually(async () => expect((await carol.request({ type: 'presence', channel: 'sweep:1' })).members).to.deep.equal([]), { timeout: 4000 });
    expect(await redis.hlen(`${cluster.prefix}p:sweep:1`)).to.equal(1);
    await redis.del(`${cluster.prefix}sweep-lock`);
    await eventually(async () => expect(await redis.hlen(`${cluster.prefix}p:sweep:1`)).to.equal(0), { timeout: 4000 });
  });

  it('removes presence and membership on a graceful shutdown', async () => {
    const alice = await open(0, '?user=alice');
    await alice.request({ type: 'subscribe', channel: 'room:g' });
    const bob = await open(2, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'room:g' });
    await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
    const { code } = await cluster.workers[2]!.stop('SIGTERM');
    expect(code).to.equal(0);
    expect((await bob.closed).code).to.equal(1001);
    await alice.waitFrame((f) => f.type === 'leave' && f.user === 'bob', 2000);
    expect(await redis.zscore(`${cluster.prefix}nodes`, 'w2')).to.equal(null);
    expect(await redis.exists(`${cluster.prefix}node:w2`, `${cluster.prefix}pn:w2`)).to.equal(0);
    expect((await alice.request({ type: 'presence', channel: 'room:g' })).members).to.deep.equal([{ user: 'alice', conn: alice.welcome!.conn }]);
  });

  it('restores presence when a worker lost its lease (swept while alive)', async () => {
    const alice = await open(0, '?user=alice');
    await alice.request({ type: 'subscribe', channel: 'room:l' });
    const bob = await open(1, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'room:l' });
    await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
    // What other nodes do to a node whose lease lapsed: drop its lease record.
    await redis.zrem(`${cluster.prefix}nodes`, 'w1');
    await eventually(async () => expect((await alice.request({ type: 'presence', channel: 'room:l' })).members).to.have.length(2), { timeout: 4000 });
    await alice.waitCount(() => alice.of('join').filter((f) => f.user === 'bob').length, 2);
  });
});

describe('cluster (redis, 3 workers, default lease)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  const clients: TestClient[] = [];

  beforeEach(async () => {
    cluster = await startCluster(3);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop();
  });

  it('delivers the leaves of a SIGKILLed worker within 15 s (SPEC §5)', async () => {
    const open = async (w: number, q: string) => {
      const c = await TestClient.open(`${cluster.workers[w]!.wsUrl}/ws${q}`);
      clients.push(c);
      return c;
    };
    const alice = await open(0, '?user=alice');
    const carol = await open(2, '?user=carol');
    for (const c of [alice, carol]) await c.request({ type: 'subscribe', channel: 'room:kill' });
    const bob = await open(1, '?user=bob');
    await bob.request({ type: 'subscribe', channel: 'room:kill' });
    for (const c of [alice, carol]) await c.waitFrame((f) => f.type === 'join' && f.user === 'bob');
    const t0 = Date.now();
    await cluster.workers[1]!.stop('SIGKILL');
    for (const c of [alice, carol]) await c.waitFrame((f) => f.type === 'leave' && f.user === 'bob', 15_000 - (Date.now() - t0));
    expect(Date.now() - t0).to.be.below(15_000);
    expect((await carol.request({ type: 'presence', channel: 'room:kill' })).members.map((m: { user: string }) => m.user).sort()).to.deep.equal(['alice', 'carol']);
  });
});
