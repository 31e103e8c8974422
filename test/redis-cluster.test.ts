import { expect } from 'chai';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { RedisBroker, RedisMembership, RedisPresence, createRedisClusterClients } from '@herald/server/redis';
import { RedisDiscovery } from '@herald/balancer';
import { RedisKeys, listLiveNodes, publishCommand } from '@herald/shared';
import pino from 'pino';
import { CLUSTER_NAMESPACES, TestClient, eventually, freePort, startWorker, type WorkerProcess } from './helpers/index.js';
import { RedisCluster } from './helpers/redis-cluster.js';
import { brokerContract } from './helpers/contract-broker.js';
import { historyContract } from './helpers/contract-history.js';
import { presenceContract } from './helpers/contract-presence.js';

const PARTITIONS = 128;
const FAST = {
  HERALD_LEASE_MS: '2000',
  HERALD_REDIS_COMMAND_TIMEOUT_MS: '1000',
  HERALD_REDIS_PROBE_MS: '200',
  HERALD_DRAIN_MS: '1000',
  // The traffic tests publish every 10 ms, above the default 100 frames/s.
  HERALD_RATE_FRAMES_PER_S: '1000',
  HERALD_RATE_FRAMES_BURST: '1000',
  // Publishes wait for the failover (up to the command timeout): many are in flight meanwhile.
  HERALD_MAX_FRAMES_IN_FLIGHT: '1000',
};

/**
 * Everything on one real local Redis Cluster (3 masters + 3 replicas, started once: six
 * redis-servers are costly): the broker/history/presence contracts, two workers' cross-worker
 * behaviour, a slot migration under traffic and a master killed under traffic. The destructive
 * cases come last; each test uses its own key prefix.
 */
describe('Redis Cluster (3 masters + 3 replicas, redis-server)', function () {
  this.timeout(120_000);
  let cluster: RedisCluster;
  const prefix = () => `t${randomBytes(4).toString('hex')}:`;

  before(async function () {
    this.timeout(120_000);
    cluster = await RedisCluster.start({ nodeTimeoutMs: 1000 });
  });
  after(async () => {
    await cluster?.stop();
  });

  describe('contracts', () => {
    brokerContract('redis cluster', async () => {
      const broker = new RedisBroker(createRedisClusterClients(cluster.startupNodes), { nodeId: 'n1', prefix: prefix(), partitions: PARTITIONS });
      return { broker, close: () => broker.close() };
    });

    historyContract('redis cluster', async () => {
      const broker = new RedisBroker(createRedisClusterClients(cluster.startupNodes), { nodeId: 'n1', prefix: prefix(), partitions: PARTITIONS });
      return { broker, close: () => broker.close() };
    });

    presenceContract('redis cluster', async () => {
      const p = prefix();
      const { publisher, subscriber } = createRedisClusterClients(cluster.startupNodes);
      if (publisher.status !== 'ready') await once(publisher, 'ready');
      const membership = new RedisMembership(publisher, { nodeId: 'n1', prefix: p, partitions: PARTITIONS });
      const presence = new RedisPresence(publisher, { membership, prefix: p, partitions: PARTITIONS });
      membership.start();
      presence.start();
      await membership.refresh();
      return {
        presence,
        close: async () => {
          await presence.close();
          await subscriber.quit();
          publisher.disconnect();
        },
      };
    });
  });

  describe('two workers', () => {
    let workers: WorkerProcess[] = [];
    let dir: string;
    let keys: RedisKeys;
    let raw: Cluster;
    const clients: TestClient[] = [];
    const open = async (worker: number, query = '') => {
      const c = await TestClient.open(`${workers[worker]!.wsUrl}/ws${query}`);
      clients.push(c);
      return c;
    };
    const readyz = async (worker: number) => (await fetch(`${workers[worker]!.url}/readyz`)).status;
    /** Subscribers of shard channel `channel` on the node at `port` (PUBSUB SHARDNUMSUB). */
    const shardSubscribers = async (port: number, channel: string) => Number((await cluster.cli(port, 'PUBSUB', 'SHARDNUMSUB', channel)).trim().split('\n')[1]);
    /** The master serving the slot of `key`. */
    const masterOfKey = async (key: string) => cluster.masterOf(Number(await cluster.cli(cluster.startupNodes[0]!.port, 'CLUSTER', 'KEYSLOT', key)));

    beforeEach(async () => {
      const p = prefix();
      keys = new RedisKeys(p, PARTITIONS);
      dir = mkdtempSync(join(tmpdir(), 'herald-rc-'));
      const config = join(dir, 'herald.json');
      writeFileSync(config, JSON.stringify({ namespaces: CLUSTER_NAMESPACES }));
      const env = { HERALD_CONFIG: config, HERALD_REDIS_CLUSTER: cluster.seeds.join(','), HERALD_REDIS_PREFIX: p, ...FAST };
      workers = [await startWorker({ ...env, NODE_ID: 'w0' }), await startWorker({ ...env, NODE_ID: 'w1' })];
      await eventually(async () => {
        for (let i = 0; i < workers.length; i++) expect(await readyz(i)).to.equal(200);
      }, { timeout: 10_000 });
      raw = new Cluster(cluster.startupNodes, { lazyConnect: true });
      raw.on('error', () => undefined);
      await raw.connect();
    });
    afterEach(async function () {
      // A failure is explained by the workers' last log lines.
      if (this.currentTest?.state === 'failed') for (const w of workers) console.log(w.child.lines.slice(-30).join('\n'));
      await Promise.all(clients.splice(0).map((c) => c.close()));
      raw.disconnect();
      await Promise.all(workers.map((w) => w.stop()));
      rmSync(dir, { recursive: true, force: true });
    });

    it('announces both workers under the {nodes} tag, listed with one MGET', async () => {
      const nodes = await eventually(async () => {
        const n = await listLiveNodes(raw, keys);
        expect(n).to.have.length(2);
        return n;
      });
      expect(nodes.map((n) => [n.id, n.address]).sort()).to.deep.equal([
        ['w0', `127.0.0.1:${workers[0]!.port}`],
        ['w1', `127.0.0.1:${workers[1]!.port}`],
      ]);
    });

    it('is discovered by the balancer from the cluster, which reaches both with a sharded command', async () => {
      const discovery = new RedisDiscovery({ target: { cluster: cluster.startupNodes, partitions: PARTITIONS }, prefix: keys.prefix, intervalMs: 100 }, pino({ level: 'silent' }));
      try {
        const seen: string[][] = [];
        await discovery.start((list) => seen.push(list.map((w) => w.address).sort()));
        await eventually(() => expect(seen.at(-1)).to.deep.equal(workers.map((w) => `127.0.0.1:${w.port}`).sort()), { timeout: 10_000 });
      } finally {
        await discovery.stop();
      }
      // What a stopping balancer sends (RedisDrainRequest): SPUBLISH on the {nodes} broadcast channel.
      expect(await publishCommand(raw, keys, 'b-test', { kind: 'drain-balancer', balancer: 'b-test', spreadMs: 0 })).to.equal(2);
    });

    it('keeps every key of a channel in one slot and pub/sub sharded', async () => {
      const pub = await open(0, '?user=alice');
      await pub.request({ type: 'subscribe', channel: 'room:k' });
      await pub.request({ type: 'publish', channel: 'room:k', data: 1 });
      const slots = await Promise.all([keys.historyMeta('room:k'), keys.historyList('room:k'), keys.presence('room:k'), keys.channel('room:k'), keys.nodePresence('w0', keys.scope('room:k'))].map((k) => cluster.cli(cluster.startupNodes[0]!.port, 'CLUSTER', 'KEYSLOT', k)));
      expect(new Set(slots).size).to.equal(1);
      expect(await raw.hget(keys.historyMeta('room:k'), 'o')).to.equal('1');
      expect(await raw.hget(keys.presence('room:k'), pub.welcome!.conn as string)).to.equal('w0\n"alice"');
      // The worker listens with SSUBSCRIBE on the master of the channel's slot (not SUBSCRIBE).
      const master = await masterOfKey(keys.channel('room:k'));
      expect(await cluster.cli(master.port, 'PUBSUB', 'SHARDCHANNELS', `${keys.prefix}*`)).to.include(keys.channel('room:k'));
      expect((await cluster.cli(master.port, 'PUBSUB', 'CHANNELS', `${keys.prefix}*`)).trim()).to.equal('');
    });

    it('holds one subscriber connection per master, however many channels', async () => {
      const c = await open(0);
      for (let i = 0; i < 60; i++) await c.request({ type: 'subscribe', channel: `room:many${i}` });
      let total = 0;
      for (const m of await cluster.masters()) {
        const list = await cluster.cli(m.port, 'CLIENT', 'LIST');
        const subs = list.split('\n').filter((l) => l.includes('name=ioredis-cluster(ssubscriber):herald:w0'));
        expect(subs.length).to.be.at.most(1);
        total += subs.length;
      }
      expect(total).to.equal(3);
    });

    it('delivers pub/sub across workers, exactly once and in offset order', async () => {
      const subs = [await open(0), await open(1)];
      for (const s of subs) {
        await s.request({ type: 'subscribe', channel: 'room:all' });
        await s.request({ type: 'subscribe', channel: 'nohist:all' });
      }
      const pubs = [await open(0), await open(1)];
      const n = 20;
      for (let i = 1; i <= n; i++) {
        pubs[i % 2]!.send({ type: 'publish', channel: 'room:all', data: i });
        pubs[i % 2]!.send({ type: 'publish', channel: 'nohist:all', data: i });
      }
      for (const p of pubs) await p.request({ type: 'publish', channel: 'nohist:all', data: 'end' });
      await pubs[0]!.request({ type: 'publish', channel: 'room:all', data: 'fin' });
      const range = (k: number) => Array.from({ length: k }, (_, i) => i + 1);
      for (const s of subs) {
        await s.waitFrame((f) => f.type === 'message' && f.data === 'fin');
        await s.waitCount(() => s.of('message', 'nohist:all').length, n + 2);
        expect(s.of('message', 'room:all').map((f) => f.offset)).to.deep.equal(range(n + 1));
        expect(s.of('message', 'nohist:all').filter((f) => typeof f.data === 'number').map((f) => f.data).sort((a, b) => a - b)).to.deep.equal(range(n));
        // A settled cluster interrupts nothing: no gap fill, no `lost`.
        expect(s.of('lost')).to.deep.equal([]);
      }
    });

    it('sends presence joins and leaves across workers and answers presence cluster-wide', async () => {
      const alice = await open(0, '?user=alice');
      await alice.request({ type: 'subscribe', channel: 'room:p' });
      const bob = await open(1, '?user=bob');
      await bob.request({ type: 'subscribe', channel: 'room:p' });
      await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
      const p = await alice.request({ type: 'presence', channel: 'room:p' });
      expect(p.members).to.have.deep.members([
        { user: 'alice', conn: alice.welcome!.conn },
        { user: 'bob', conn: bob.welcome!.conn },
      ]);
      await bob.close();
      expect(await alice.waitFrame((f) => f.type === 'leave')).to.deep.equal({ type: 'leave', channel: 'room:p', user: 'bob', conn: bob.welcome!.conn });
      expect((await alice.request({ type: 'presence', channel: 'room:p' })).members).to.deep.equal([{ user: 'alice', conn: alice.welcome!.conn }]);
    });

    it('sweeps the presence of a SIGKILLed worker and publishes its leaves', async () => {
      const alice = await open(0, '?user=alice');
      await alice.request({ type: 'subscribe', channel: 'room:dead' });
      const bob = await open(1, '?user=bob');
      await bob.request({ type: 'subscribe', channel: 'room:dead' });
      await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
      await workers[1]!.stop('SIGKILL');
      expect(await alice.waitFrame((f) => f.type === 'leave', 15_000)).to.deep.include({ user: 'bob', conn: bob.welcome!.conn });
      expect((await alice.request({ type: 'presence', channel: 'room:dead' })).members).to.deep.equal([{ user: 'alice', conn: alice.welcome!.conn }]);
      expect(await raw.scard(keys.nodePresence('w1', keys.scope('room:dead')))).to.equal(0);
      await eventually(async () => expect((await listLiveNodes(raw, keys)).map((n) => n.id)).to.deep.equal(['w0']), { timeout: 10_000 });
    });

    it('delivers direct messages to every connection of a user on the other worker', async () => {
      const b1 = await open(1, '?user=bob');
      const b2 = await open(0, '?user=bob');
      const alice = await open(0, '?user=alice');
      expect(await alice.request({ type: 'send', user: 'bob', data: { hi: 1 } })).to.deep.include({ type: 'ack' });
      for (const b of [b1, b2]) expect(await b.waitFrame((f) => f.type === 'direct')).to.deep.equal({ type: 'direct', from: 'alice', data: { hi: 1 } });
    });

    it('recovers missed messages after reconnecting to the other worker', async () => {
      const pub = await open(0);
      const bob = await open(1, '?user=bob');
      const ack = await bob.request({ type: 'subscribe', channel: 'room:r' });
      for (let i = 1; i <= 2; i++) await pub.request({ type: 'publish', channel: 'room:r', data: i });
      await bob.waitCount(() => bob.of('message').length, 2);
      const last = bob.of('message').at(-1)!;
      await bob.close();
      for (let i = 3; i <= 5; i++) await pub.request({ type: 'publish', channel: 'room:r', data: i });
      const again = await open(0, '?user=bob');
      const resumed = await again.request({ type: 'subscribe', channel: 'room:r', since: { offset: last.offset, epoch: last.epoch } });
      expect(resumed).to.deep.include({ type: 'ack', offset: 5, epoch: ack.epoch, recovered: true });
      expect(again.of('message').map((f) => [f.offset, f.data])).to.deep.equal([[3, 3], [4, 4], [5, 5]]);
    });

    it('fills the gap when a sharded subscriber connection is killed (CLIENT KILL TYPE pubsub on its master)', async () => {
      const pub = await open(0);
      const sub = await open(1);
      await sub.request({ type: 'subscribe', channel: 'room:ck' });
      await sub.request({ type: 'subscribe', channel: 'nohist:ck' });
      await pub.request({ type: 'publish', channel: 'room:ck', data: 1 });
      await sub.waitFrame((f) => f.type === 'message' && f.data === 1);
      const master = await masterOfKey(keys.channel('room:ck'));
      expect(Number(await cluster.cli(master.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub'))).to.be.at.least(1);
      // Published while worker 1's subscriber for that master is gone or just back.
      for (const d of [2, 3]) expect(await pub.request({ type: 'publish', channel: 'room:ck', data: d })).to.deep.include({ type: 'ack' });
      await sub.waitCount(() => sub.of('message', 'room:ck').length, 3, 10_000);
      await eventually(async () => {
        await pub.request({ type: 'publish', channel: 'room:ck', data: 'live' });
        await sub.waitFrame((f) => f.type === 'message' && f.data === 'live', 500);
      }, { timeout: 10_000 });
      const got = sub.of('message', 'room:ck');
      // Every message once, in offset order, 2 and 3 recovered from history: no `lost` for it.
      expect(got.slice(0, 3).map((f) => [f.offset, f.data])).to.deep.equal([[1, 1], [2, 2], [3, 3]]);
      expect(got.map((f) => f.offset)).to.deep.equal(got.map((_, i) => i + 1));
      expect(sub.of('lost', 'room:ck')).to.deep.equal([]);
      // The channel without history cannot be filled: it gets `lost` if its subscription on that
      // master was cut (only when both channels share the master).
      const nohistMaster = await masterOfKey(keys.channel('nohist:ck'));
      if (nohistMaster.id === master.id) await sub.waitFrame((f) => f.type === 'lost' && f.channel === 'nohist:ck', 10_000);
    });

    /**
     * Publishes `room:busy` from worker 0 every few ms while `disturb` runs, then a few more, and
     * checks the counts exactly: every publish gets one answer (`ack` or `unavailable`), the
     * subscriber on worker 1 gets every acknowledged message once, in offset order, and any hole
     * is covered by a gap fill or announced with `lost`.
     */
    async function publishThrough(disturb: () => Promise<void>): Promise<{ acked: number; unavailable: number; lost: number }> {
      const pub = await open(0);
      const sub = await open(1);
      await sub.request({ type: 'subscribe', channel: 'room:busy' });
      let stop = false;
      let sent = 0;
      const answers: Array<Promise<Record<string, unknown>>> = [];
      const loop = (async () => {
        while (!stop) {
          sent++;
          answers.push(pub.request({ type: 'publish', channel: 'room:busy', data: sent }, 20_000));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      await disturb();
      // The broker is back: the next publishes must succeed and reach the subscriber.
      await eventually(async () => expect(await readyz(0)).to.equal(200), { timeout: 15_000 });
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await loop;
      const replies = await Promise.all(answers);
      expect(replies).to.have.length(sent);
      const acked = replies.filter((r) => r.type === 'ack');
      const unavailable = replies.filter((r) => r.type === 'error');
      for (const r of unavailable) expect(r.code).to.equal('unavailable');
      expect(acked.length + unavailable.length).to.equal(sent);
      const fin = await pub.request({ type: 'publish', channel: 'room:busy', data: 'fin' });
      expect(fin.type).to.equal('ack');
      await sub.waitFrame((f) => f.type === 'message' && f.data === 'fin', 15_000);
      const got = sub.of('message', 'room:busy');
      const lost = sub.of('lost', 'room:busy');
      // Exactly once, in offset order; every acknowledged publish arrived (or a `lost` says why not).
      const offsets = got.map((f) => f.offset as number);
      expect(offsets).to.deep.equal([...offsets].sort((a, b) => a - b));
      expect(new Set(offsets).size).to.equal(offsets.length);
      const delivered = new Set(got.map((f) => f.data));
      const missing = replies.flatMap((r, i) => (r.type === 'ack' && !delivered.has(i + 1) ? [i + 1] : []));
      if (lost.length === 0) {
        expect(missing).to.deep.equal([]);
        expect(offsets).to.deep.equal(Array.from({ length: offsets.length }, (_, i) => offsets[0]! + i));
      }
      return { acked: acked.length, unavailable: unavailable.length, lost: lost.length };
    }

    it('follows a slot migration under traffic (MOVED/ASK), losing nothing', async () => {
      const key = keys.historyMeta('room:busy');
      const slot = Number(await cluster.cli(cluster.startupNodes[0]!.port, 'CLUSTER', 'KEYSLOT', key));
      const result = await publishThrough(async () => {
        const from = await cluster.masterOf(slot);
        const to = (await cluster.masters()).find((m) => m.id !== from.id)!;
        await migrateSlot(cluster, slot, from, to);
        expect((await cluster.masterOf(slot)).id).to.equal(to.id);
        // The workers follow the channel to its new master (Redis dropped it on the old one).
        await eventually(async () => expect(await shardSubscribers(to.port, keys.channel('room:busy'))).to.equal(1), { timeout: 10_000 });
      });
      // A migration is no outage: every publish succeeds, and the moved subscription's gap is filled.
      expect(result.unavailable).to.equal(0);
      expect(result.lost).to.equal(0);
      expect(result.acked).to.be.greaterThan(20);
    });

    it('survives a SIGKILLed master: replica promoted, subscriptions restored, every publish answered', async () => {
      const slot = Number(await cluster.cli(cluster.startupNodes[0]!.port, 'CLUSTER', 'KEYSLOT', keys.channel('room:busy')));
      // While the slot has no master the worker says so: /readyz 503 (the probe pings every slot's master).
      let watching = true;
      let saw503 = false;
      const watch = (async () => {
        while (watching) {
          if ((await readyz(0)) === 503) saw503 = true;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const result = await publishThrough(async () => {
        const { promoted } = await cluster.killMaster({ slot });
        await eventually(async () => expect(await shardSubscribers(promoted.port, keys.channel('room:busy'))).to.equal(1), { timeout: 15_000 });
      });
      watching = false;
      await watch;
      expect(saw503).to.equal(true);
      expect(result.acked).to.be.greaterThan(20);
      // Both workers are still running and serve cross-worker traffic on the new master.
      const exited = await Promise.race([...workers.map((w) => w.child.exited.then(() => true)), new Promise((r) => setTimeout(() => r(false), 100))]);
      expect(exited).to.equal(false);
      const a = await open(1);
      await a.request({ type: 'subscribe', channel: 'nohist:after' });
      const b = await open(0);
      await eventually(async () => {
        await b.request({ type: 'publish', channel: 'nohist:after', data: 'x' });
        await a.waitFrame((f) => f.type === 'message' && f.channel === 'nohist:after', 500);
      }, { timeout: 10_000 });
      // Presence and direct messages across the workers, on the changed cluster.
      const alice = await open(0, '?user=alice');
      await alice.request({ type: 'subscribe', channel: 'room:after' });
      const bob = await open(1, '?user=bob');
      await bob.request({ type: 'subscribe', channel: 'room:after' });
      await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
      expect((await bob.request({ type: 'presence', channel: 'room:after' })).members).to.have.deep.members([
        { user: 'alice', conn: alice.welcome!.conn },
        { user: 'bob', conn: bob.welcome!.conn },
      ]);
      expect(await alice.request({ type: 'send', user: 'bob', data: 'hi' })).to.deep.include({ type: 'ack' });
      expect(await bob.waitFrame((f) => f.type === 'direct')).to.deep.equal({ type: 'direct', from: 'alice', data: 'hi' });
    });
  });
});

/**
 * Moves one slot, keys included, from `from` to `to` (CLUSTER SETSLOT IMPORTING/MIGRATING,
 * MIGRATE in batches, SETSLOT NODE everywhere): while it runs, clients get ASK for moved keys and
 * TRYAGAIN for scripts whose keys are split, then MOVED.
 */
async function migrateSlot(cluster: RedisCluster, slot: number, from: { id: string; port: number }, to: { id: string; port: number }): Promise<void> {
  await cluster.cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id);
  await cluster.cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id);
  for (;;) {
    const keys = (await cluster.cli(from.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '10')).split('\n').filter((k) => k.trim() !== '');
    if (keys.length === 0) break;
    await cluster.cli(from.port, 'MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys);
    // Keep the window open a little, so traffic meets the half-migrated slot.
    await new Promise((r) => setTimeout(r, 50));
  }
  await cluster.cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
  await cluster.cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
  for (const m of await cluster.masters()) if (m.id !== from.id && m.id !== to.id) await cluster.cli(m.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
  await cluster.settled();
}

describe('worker with HERALD_REDIS_CLUSTER and no seed answering (1 worker)', function () {
  this.timeout(30_000);

  it('listens unready, keeps running and answers unavailable instead of crashing', async () => {
    const dead = [await freePort(), await freePort()];
    const worker = await startWorker({ HERALD_REDIS_CLUSTER: dead.map((p) => `127.0.0.1:${p}`).join(','), NODE_ID: 'lonely', ...FAST });
    try {
      const res = await fetch(`${worker.url}/readyz`);
      expect(res.status).to.equal(503);
      expect(await res.json()).to.deep.include({ reason: 'broker unavailable' });
      const c = await TestClient.open(`${worker.wsUrl}/ws`);
      expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).to.deep.include({ type: 'error', code: 'unavailable' });
      await c.close();
      expect((await fetch(`${worker.url}/healthz`)).status).to.equal(200);
    } finally {
      expect((await worker.stop()).code).to.equal(0);
    }
  });
});
