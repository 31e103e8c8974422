import { expect } from 'chai';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { BrokerUnavailableError, type PresenceEvent } from '@herald/server';
import { RedisBroker, RedisMembership, RedisPresence, createRedisClients, type RedisCommandClient } from '@herald/server/redis';
import { listLiveNodes } from '@herald/shared';
import { BrokerRecorder, eventually, startRedis, type TestRedis } from './helpers/index.js';

const LEASE = 1000;

describe('Redis presence and membership (redis-server)', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let raw: Redis;
  let prefix: string;
  const cleanups: Array<() => Promise<void> | void> = [];

  /** A node: its command connection, membership and presence (no broker; `announced` records what it would publish). */
  const node = async (nodeId: string) => {
    const { publisher, subscriber } = createRedisClients(redis.url, { commandTimeoutMs: 500 });
    subscriber.disconnect();
    if (publisher.status !== 'ready') await once(publisher, 'ready');
    const announced: PresenceEvent[] = [];
    let presence: RedisPresence | undefined;
    const membership = new RedisMembership(publisher, { nodeId, prefix, leaseMs: LEASE, onLeaseLost: () => void presence?.restore() });
    presence = new RedisPresence(publisher, { membership, prefix, sweepIntervalMs: 100, announce: async (e) => void announced.push(e) });
    membership.start();
    presence.start();
    await membership.setAddress(`127.0.0.1:${nodeId.length}`);
    const n = { publisher, membership, presence, announced, kill: () => publisher.disconnect() };
    cleanups.push(async () => {
      await presence!.close().catch(() => undefined);
      publisher.disconnect();
    });
    return n;
  };

  /** A broker subscribed to `channel`, to see the leave events sweepers publish. */
  const observer = async (channel: string) => {
    const broker = new RedisBroker(createRedisClients(redis.url), { nodeId: 'observer', prefix });
    const rec = new BrokerRecorder();
    await broker.start(rec);
    await broker.subscribe(channel);
    cleanups.push(() => broker.close());
    return rec;
  };

  beforeEach(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    raw.on('error', () => undefined);
    prefix = `t${randomBytes(4).toString('hex')}:`;
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    raw.disconnect();
    await redis.stop();
  });

  it('answers members cluster-wide in one read', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.presence.add('room:1', { user: 'alice', conn: 'ca' });
    await b.presence.add('room:1', { user: null, conn: 'cb' });
    for (const n of [a, b]) expect(await n.presence.members('room:1')).to.have.deep.members([{ user: 'alice', conn: 'ca' }, { user: null, conn: 'cb' }]);
    expect(await raw.hget(`${prefix}p:room:1`, 'ca')).to.equal('a\n"alice"');
    expect(await raw.smembers(`${prefix}pn:b`)).to.deep.equal(['room:1\ncb']);
  });

  it('lists live nodes with their records, and forgets a stopped one', async () => {
    const a = await node('a');
    await node('bb');
    const nodes = await listLiveNodes(raw, prefix);
    expect(nodes.map((n) => [n.id, n.address]).sort()).to.deep.equal([['a', '127.0.0.1:1'], ['bb', '127.0.0.1:2']]);
    expect(await raw.pttl(`${prefix}node:a`)).to.be.within(1, LEASE);
    await a.presence.close();
    expect((await listLiveNodes(raw, prefix)).map((n) => n.id)).to.deep.equal(['bb']);
    expect(await raw.zscore(`${prefix}nodes`, 'a')).to.equal(null);
  });

  it('hides and sweeps the members of a node whose lease expired, publishing their leaves once', async () => {
    const a = await node('a');
    const b = await node('b');
    const c = await node('c');
    const rec = await observer('room:dead');
    await b.presence.add('room:dead', { user: 'bob', conn: 'cb1' });
    await b.presence.add('room:dead', { user: 'bob', conn: 'cb2' });
    await a.presence.add('room:dead', { user: 'alice', conn: 'ca' });
    const t0 = Date.now();
    b.kill(); // like SIGKILL: no cleanup, the lease just stops being refreshed
    await eventually(() => expect(rec.events.filter((e) => e.kind === 'leave')).to.have.length(2), { timeout: LEASE + 2000 });
    expect(Date.now() - t0).to.be.below(LEASE + 1000);
    expect(rec.events.filter((e) => e.kind === 'leave')).to.have.deep.members([
      { kind: 'leave', channel: 'room:dead', user: 'bob', conn: 'cb1' },
      { kind: 'leave', channel: 'room:dead', user: 'bob', conn: 'cb2' },
    ]);
    expect(await c.presence.members('room:dead')).to.deep.equal([{ user: 'alice', conn: 'ca' }]);
    expect(await raw.exists(`${prefix}pn:b`, `${prefix}node:b`)).to.equal(0);
    expect(await raw.zscore(`${prefix}nodes`, 'b')).to.equal(null);
    // Two live sweepers, yet each leave was published once.
    await a.presence.add('room:dead', { user: 'x', conn: 'later' });
    expect(rec.events.filter((e) => e.kind === 'leave')).to.have.length(2);
  });

  it('removes its entries and records on close, publishing their leaves', async () => {
    const a = await node('a');
    const rec = await observer('room:close');
    await a.presence.add('room:close', { user: 'alice', conn: 'c1' });
    await a.presence.close();
    await eventually(() => expect(rec.events).to.deep.equal([{ kind: 'leave', channel: 'room:close', user: 'alice', conn: 'c1' }]));
    expect(await raw.exists(`${prefix}p:room:close`, `${prefix}pn:a`, `${prefix}node:a`)).to.equal(0);
    expect(await a.presence.add('room:close', { user: 'alice', conn: 'c2' }).catch((e) => e)).to.be.instanceOf(BrokerUnavailableError);
  });

  it('removes entries a previous process with the same node id left behind', async () => {
    const old = await node('same');
    await old.presence.add('room:re', { user: 'ghost', conn: 'old' });
    old.kill();
    const rec = await observer('room:re');
    const again = await node('same');
    await again.presence.add('room:re', { user: 'bob', conn: 'new' });
    await eventually(() => expect(rec.events).to.deep.equal([{ kind: 'leave', channel: 'room:re', user: 'ghost', conn: 'old' }]));
    expect(await again.presence.members('room:re')).to.deep.equal([{ user: 'bob', conn: 'new' }]);
  });

  it('retries a removal that failed while Redis was unreachable, so it leaves no ghost', async () => {
    const a = await node('a');
    await a.presence.add('room:st', { user: 'alice', conn: 'c1' });
    await a.presence.add('room:st', { user: 'bob', conn: 'c2' });
    (a.publisher as unknown as RedisCommandClient).disconnect(true);
    expect(await a.presence.remove('room:st', { user: 'alice', conn: 'c1' }).catch((e) => e)).to.be.instanceOf(BrokerUnavailableError);
    await eventually(async () => expect(await raw.hkeys(`${prefix}p:room:st`)).to.deep.equal(['c2']), { timeout: 3000 });
    expect(a.announced).to.deep.equal([{ kind: 'leave', channel: 'room:st', user: 'alice', conn: 'c1' }]);
  });

  it('restores its entries and announces joins when its lease was swept while it was alive', async () => {
    const a = await node('a');
    await a.presence.add('room:lost', { user: 'alice', conn: 'c1' });
    await raw.zrem(`${prefix}nodes`, 'a');
    await raw.del(`${prefix}p:room:lost`, `${prefix}pn:a`);
    await eventually(async () => expect(await a.presence.members('room:lost')).to.deep.equal([{ user: 'alice', conn: 'c1' }]), { timeout: 3000 });
    expect(a.announced).to.deep.equal([{ kind: 'join', channel: 'room:lost', user: 'alice', conn: 'c1' }]);
  });
});
