import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  BrokerUnavailableError,
  RedisBroker,
  createRedisClients,
  type RedisCommandClient,
  type RedisSubscriberClient,
} from '@herald/server';
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
    const broker = new RedisBroker(clients, { nodeId, prefix, probeTimeoutMs: 500, ...extra });
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
