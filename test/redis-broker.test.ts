import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { BrokerUnavailableError } from '@herald/server';
import { RedisBroker, createRedisClients, encodeEnvelope, type RedisCommandClient, type RedisSubscriberClient } from '@herald/server/redis';
import { BrokerRecorder, eventually, startRedis, type TestRedis } from './helpers/index.js';

const HISTORY = { size: 100, ttlMs: 60_000 };

describe('Redis broker (redis-server)', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let raw: Redis;
  let prefix: string;
  const brokers: RedisBroker[] = [];

  const node = async (nodeId: string, extra: { probeIntervalMs?: number } = {}) => {
    const clients = createRedisClients(redis.url, { commandTimeoutMs: 500 });
    const broker = new RedisBroker(clients, { nodeId, prefix, probeTimeoutMs: 500, commandTimeoutMs: 500, gapRetryMs: 50, ...extra });
    const rec = new BrokerRecorder();
    await broker.start(rec);
    brokers.push(broker);
    return { broker, rec };
  };
  const numsub = async (channel: string) => ((await raw.pubsub('NUMSUB', channel)) as Array<string | number>)[1];

  beforeEach(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    raw.on('error', () => undefined);
    prefix = `t${randomBytes(4).toString('hex')}:`;
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    raw.disconnect();
    await redis.stop();
  });

  it('delivers across nodes exactly once, own events included', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:1');
    await b.broker.subscribe('room:1');
    await b.broker.publish({ kind: 'message', channel: 'room:1', data: 'plain', from: null });
    await b.broker.publish({ kind: 'join', channel: 'room:1', user: 'u', conn: 'c' });
    await b.broker.publish({ kind: 'message', channel: 'room:1', data: 'hist', from: null }, HISTORY);
    for (const n of [a, b]) {
      await eventually(() => expect(n.rec.events.some((e) => e.kind === 'message' && e.data === 'hist')).to.equal(true));
      expect(n.rec.events.map((e) => (e.kind === 'message' ? e.data : e.kind))).to.deep.equal(['plain', 'join', 'hist']);
    }
  });

  it('holds exactly one Redis subscription per channel with local subscribers, plus its node and broadcast channels', async () => {
    const a = await node('a');
    expect(await numsub(`${prefix}n:a`)).to.equal(1);
    expect(await numsub(`${prefix}all`)).to.equal(1);
    await a.broker.subscribe('room:x');
    await a.broker.subscribeUser('bob');
    expect(await numsub(`${prefix}ch:room:x`)).to.equal(1);
    expect(await numsub(`${prefix}u:bob`)).to.equal(1);
    await a.broker.unsubscribe('room:x');
    await a.broker.unsubscribeUser('bob');
    expect(await numsub(`${prefix}ch:room:x`)).to.equal(0);
    expect(await numsub(`${prefix}u:bob`)).to.equal(0);
  });

  it('routes direct messages by user, commands to every node or to one node', async () => {
    const a = await node('a');
    const b = await node('b');
    await b.broker.subscribeUser('bob');
    await a.broker.sendDirect({ user: 'bob', from: 'alice', data: 1 });
    await eventually(() => expect(b.rec.directs).to.deep.equal([{ user: 'bob', from: 'alice', data: 1 }]));
    expect(a.rec.directs).to.deep.equal([]);
    await a.broker.commandNode('b', { kind: 'disconnect', user: 'x' });
    await a.broker.command({ kind: 'disconnect', user: 'y' });
    await eventually(() => expect(b.rec.commands).to.deep.equal([{ kind: 'disconnect', user: 'x' }, { kind: 'disconnect', user: 'y' }]));
    expect(a.rec.commands).to.deep.equal([{ kind: 'disconnect', user: 'y' }]);
  });

  it('ignores undecodable envelopes', async () => {
    const a = await node('a');
    await a.broker.subscribe('room:g');
    await raw.publish(`${prefix}ch:room:g`, Buffer.from([0xff, 0x00, 0x0a]));
    await raw.publish(`${prefix}ch:room:g`, '{"t":"zz","n":"x"}\n');
    await raw.publish(`${prefix}ch:room:g`, '@x:y {}\n');
    await a.broker.publish({ kind: 'message', channel: 'room:g', data: 'ok', from: null }, HISTORY);
    await eventually(() => expect(a.rec.events).to.have.length(1));
    expect(a.broker.available).to.equal(true);
  });

  it('fills the gap of history messages published while its subscriber connection was down', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:gap');
    await b.broker.publish({ kind: 'message', channel: 'room:gap', data: 0, from: null }, HISTORY);
    await eventually(() => expect(a.rec.events).to.have.length(1));
    expect(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).to.equal(2);
    // Sent before `a` can possibly have reconnected (its retry delay alone is >= 10 ms).
    await Promise.all([1, 2, 3].map((i) => b.broker.publish({ kind: 'message', channel: 'room:gap', data: i, from: null }, HISTORY)));
    await eventually(() => expect(a.rec.events).to.have.length(4));
    await b.broker.publish({ kind: 'message', channel: 'room:gap', data: 4, from: null }, HISTORY);
    await eventually(() => expect(a.rec.events).to.have.length(5));
    expect(a.rec.events.map((e) => (e as { offset: number }).offset)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(a.rec.availability).to.include(false);
    expect(a.rec.availability.at(-1)).to.equal(true);
  });

  it('says lost and goes on when the stream went back under the same epoch (a failover lost the last appends)', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:back');
    for (let i = 1; i <= 3; i++) await b.broker.publish({ kind: 'message', channel: 'room:back', data: i, from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:back')).to.have.length(3));
    const epoch = (a.rec.messages('room:back')[0] as { epoch: string }).epoch;
    // What a replica promoted before it got appends 2 and 3 holds.
    await raw.hset(`${prefix}h:room:back`, 'o', 1);
    await raw.ltrim(`${prefix}hl:room:back`, 0, 0);
    expect(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).to.equal(2);
    await eventually(() => expect(a.rec.lost).to.deep.equal([{ channel: 'room:back', position: { offset: 1, epoch } }]));
    // Offsets 2 and 3 are given again, to new messages: they are delivered, not dropped as duplicates.
    for (const d of ['x', 'y']) await b.broker.publish({ kind: 'message', channel: 'room:back', data: d, from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:back').map((e) => (e.kind === 'message' ? [e.offset, e.data] : []))).to.deep.equal([[1, 1], [2, 2], [3, 3], [2, 'x'], [3, 'y']]));
  });

  /** `m` messages' values and positions as recorded by `rec` on `channel`. */
  const seen = (rec: BrokerRecorder, channel: string) =>
    rec.messages(channel).map((e) => (e.kind === 'message' ? { data: e.data, offset: e.offset, epoch: e.epoch } : undefined));

  it('fills the gap of a channel it has seen no message of yet, from the position its subscriber read', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:fresh');
    // What a session does right after subscribing: read the position (it becomes the baseline).
    const start = await a.broker.position('room:fresh');
    expect(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).to.equal(2);
    await Promise.all([1, 2, 3].map((i) => b.broker.publish({ kind: 'message', channel: 'room:fresh', data: i, from: null }, HISTORY)));
    await eventually(() => expect(a.rec.messages('room:fresh')).to.have.length(3));
    await b.broker.publish({ kind: 'message', channel: 'room:fresh', data: 4, from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:fresh')).to.have.length(4));
    expect(seen(a.rec, 'room:fresh')).to.deep.equal([1, 2, 3, 4].map((i) => ({ data: i, offset: i, epoch: start.epoch })));
    expect(a.rec.lost).to.deep.equal([]);
  });

  it('fills a hole in the live stream from history (a message its subscription missed)', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:hole');
    const first = await b.broker.publish({ kind: 'message', channel: 'room:hole', data: 1, from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:hole')).to.have.length(1));
    // Offset 2 goes into history without being published: what a node sees when Redis ran a
    // publish while its subscription was being replaced (issue 12: "jumped from 1628 to 1714").
    const meta = `${prefix}h:room:hole`;
    await raw.hincrby(meta, 'o', 1);
    await raw.rpush(`${prefix}hl:room:hole`, `@2:${first!.epoch} ${encodeEnvelope({ type: 'event', node: 'b', event: { kind: 'message', channel: 'room:hole', data: 2, from: null } }).toString()}`);
    await b.broker.publish({ kind: 'message', channel: 'room:hole', data: 3, from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:hole')).to.have.length(3));
    expect(seen(a.rec, 'room:hole')).to.deep.equal([1, 2, 3].map((i) => ({ data: i, offset: i, epoch: first!.epoch })));
    expect(a.rec.lost).to.deep.equal([]);
  });

  it('after Redis restarts empty: onLost with the new epoch from offset 0, then every message of the new epoch; onLost for channels without history', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:r');
    await a.broker.subscribe('plain:r');
    const old = await b.broker.publish({ kind: 'message', channel: 'room:r', data: 'old', from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:r')).to.have.length(1));
    const port = redis.port;
    await redis.stop('SIGKILL');
    redis = await startRedis(port);
    // Published as soon as b can: a's subscription may well not be back yet (issue 12).
    const acked: Array<{ data: number; offset: number; epoch: string }> = [];
    for (let i = 1; acked.length < 5; i++) {
      const p = await b.broker.publish({ kind: 'message', channel: 'room:r', data: i, from: null }, HISTORY).catch(() => undefined);
      if (p) acked.push({ data: i, ...p });
      else await new Promise((r) => setTimeout(r, 5));
    }
    const epoch = acked[0]!.epoch;
    expect(epoch).to.not.equal(old!.epoch);
    expect(acked.map((p) => p.offset)).to.deep.equal([1, 2, 3, 4, 5]);
    await eventually(() => expect(a.rec.messages('room:r')).to.have.length(6), { timeout: 5000 });
    expect(seen(a.rec, 'room:r')).to.deep.equal([{ data: 'old', ...old }, ...acked]);
    await eventually(() => expect(a.rec.lost).to.have.length(2));
    expect(a.rec.lost).to.deep.include({ channel: 'room:r', position: { offset: 0, epoch } });
    expect(a.rec.lost).to.deep.include({ channel: 'plain:r' });
  });

  it('fences a history publish: one Redis runs after the sender gave up reaches nobody (all or none)', async () => {
    const a = await node('a', { probeIntervalMs: 60_000 });
    const b = await node('b', { probeIntervalMs: 60_000 });
    await a.broker.subscribe('room:fence');
    const before = await b.broker.publish({ kind: 'message', channel: 'room:fence', data: 'before', from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:fence')).to.have.length(1));
    process.kill(redis.child.pid!, 'SIGSTOP');
    try {
      // Sent to the frozen Redis: answered unavailable when the 500 ms command timeout passes.
      const err = await b.broker.publish({ kind: 'message', channel: 'room:fence', data: 'late', from: null }, HISTORY).catch((e) => e);
      expect(err).to.be.instanceOf(BrokerUnavailableError);
    } finally {
      process.kill(redis.child.pid!, 'SIGCONT');
    }
    await eventually(() => expect(a.broker.available && b.broker.available).to.equal(true), { timeout: 5000 });
    const after = await b.broker.publish({ kind: 'message', channel: 'room:fence', data: 'after', from: null }, HISTORY);
    await eventually(() => expect(a.rec.messages('room:fence')).to.have.length(2));
    // The script ran when Redis resumed, found its deadline passed and did nothing.
    expect(after).to.deep.equal({ offset: before!.offset + 1, epoch: before!.epoch });
    expect(a.rec.messages('room:fence').map((e) => (e as { data: unknown }).data)).to.deep.equal(['before', 'after']);
    expect((await a.broker.recover('room:fence', { offset: 0, epoch: before!.epoch })).messages).to.have.length(2);
  });

  it('delivers locally and rejects while Redis is down, then restores subscriptions', async () => {
    const a = await node('a');
    const b = await node('b');
    await a.broker.subscribe('room:d');
    await b.broker.subscribe('room:d');
    const port = redis.port;
    await redis.stop();
    await eventually(() => expect(a.broker.available).to.equal(false));
    expect(a.rec.availability.at(-1)).to.equal(false);
    const err = await a.broker.publish({ kind: 'message', channel: 'room:d', data: 'local', from: null }).catch((e) => e);
    expect(err).to.be.instanceOf(BrokerUnavailableError);
    await eventually(() => expect(a.rec.events.map((e) => (e as { data: unknown }).data)).to.deep.equal(['local']));
    expect(await a.broker.publish({ kind: 'message', channel: 'room:d', data: 'h', from: null }, HISTORY).catch((e) => e)).to.be.instanceOf(BrokerUnavailableError);
    expect(await a.broker.sendDirect({ user: 'x', from: null, data: 1 }).catch((e) => e)).to.be.instanceOf(BrokerUnavailableError);
    // Subscribing while down succeeds locally and reaches Redis once it is back.
    await a.broker.subscribe('room:later');
    redis = await startRedis(port);
    await eventually(() => expect(a.broker.available && b.broker.available).to.equal(true), { timeout: 5000 });
    expect(a.rec.availability.at(-1)).to.equal(true);
    await b.broker.publish({ kind: 'message', channel: 'room:d', data: 'back', from: null });
    await b.broker.publish({ kind: 'message', channel: 'room:later', data: 'later', from: null });
    await eventually(() => expect(a.rec.events.map((e) => (e as { data: unknown }).data)).to.deep.equal(['local', 'back', 'later']));
    expect(b.rec.events.map((e) => (e as { data: unknown }).data)).to.deep.equal(['back']);
  });

  it('works with clients it is handed, and stays unavailable without crashing when they never connect', async () => {
    const fake = () => Object.assign(new EventEmitter(), {
      status: 'connecting',
      publish: async () => 0,
      evalsha: async () => null,
      eval: async () => null,
      evalshaBuffer: async () => null,
      evalBuffer: async () => null,
      subscribe: async () => 0,
      unsubscribe: async () => 0,
      ping: () => new Promise(() => undefined),
      quit: async () => 'OK',
      disconnect: () => undefined,
    });
    const broker = new RedisBroker({ publisher: fake() as unknown as RedisCommandClient, subscriber: fake() as unknown as RedisSubscriberClient }, { nodeId: 'f', prefix, startTimeoutMs: 50 });
    const rec = new BrokerRecorder();
    await broker.start(rec);
    expect(broker.available).to.equal(false);
    await broker.subscribe('room:f');
    expect(await broker.publish({ kind: 'message', channel: 'room:f', data: 1, from: null }).catch((e) => e)).to.be.instanceOf(BrokerUnavailableError);
    await eventually(() => expect(rec.events).to.have.length(1));
    await broker.close();
  });
});
