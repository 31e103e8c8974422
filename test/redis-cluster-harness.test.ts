import { expect } from 'chai';
import { Cluster } from 'ioredis';
import { RedisCluster } from './helpers/redis-cluster.js';
import { eventually } from './helpers/wait.js';

/** Keys in different slots (so on different masters) for the cross-node checks. */
const KEYS = ['{a}k', '{b}k', '{c}k', '{d}k', '{e}k', '{f}k'];

describe('redis cluster harness (3 masters + 3 replicas, redis-server --cluster-enabled)', function () {
  this.timeout(60_000);
  let cluster: RedisCluster;
  const clients: Cluster[] = [];

  function client(): Cluster {
    const c = new Cluster(cluster.startupNodes, { shardedSubscribers: true, clusterRetryStrategy: () => 100, redisOptions: { connectTimeout: 1000 } });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  }

  // One cluster for the suite (forming one takes seconds); the master kill runs last.
  before(async () => {
    cluster = await RedisCluster.start();
  });

  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });

  after(async () => {
    await cluster?.stop();
  });

  it('forms with 3 masters covering every slot, each with one attached replica', async () => {
    const topo = await cluster.topology();
    const masters = topo.filter((n) => n.role === 'master');
    expect(masters).to.have.length(3);
    expect(masters.flatMap((m) => m.slots).reduce((s, [a, b]) => s + b - a + 1, 0)).to.equal(16384);
    for (const m of masters) expect(topo.filter((n) => n.masterId === m.id), `replicas of ${m.port}`).to.have.length(1);
    expect(cluster.seeds).to.have.length(6);
  });

  it('SPUBLISH reaches SSUBSCRIBE subscribers of shard channels on every master', async () => {
    const sub = client();
    const pub = client();
    const channels = ['{a}ch', '{b}ch', '{c}ch', '{d}ch', '{e}ch', '{f}ch'];
    const owners = new Set<number>();
    for (const ch of channels) owners.add((await cluster.masterOf(Number(await pub.call('CLUSTER', 'KEYSLOT', ch)))).port);
    expect(owners.size, 'the channels span several masters').to.be.greaterThan(1);
    const got: string[] = [];
    sub.on('smessage', (ch: string, msg: string) => got.push(`${ch}=${msg}`));
    for (const ch of channels) await sub.ssubscribe(ch);
    for (const ch of channels) expect(await pub.spublish(ch, `m-${ch}`)).to.equal(1);
    await eventually(() => expect(got.sort()).to.deep.equal(channels.map((c) => `${c}=m-${c}`).sort()));
  });

  it('reshard moves slots to another master while a key stays readable', async () => {
    const c = client();
    // A key in the first 100 slots of the master serving slot 0: reshard moves a source's lowest
    // slots first, so moving 100 certainly moves this key's slot (in about a second, not twenty).
    const from = await cluster.masterOf(0);
    let key = '';
    let slot = -1;
    for (let i = 0; slot < 0 || slot >= 100; i++) slot = Number(await c.call('CLUSTER', 'KEYSLOT', (key = `{k${i}}`)));
    await c.set(key, 'kept');

    const to = (await cluster.masters()).find((m) => m.id !== from.id)!;
    let reads = 0;
    let reading = true;
    const reader = (async () => {
      while (reading) {
        expect(await c.get(key)).to.equal('kept');
        reads++;
      }
    })();
    try {
      await cluster.reshard(from.port, to.port, 100);
    } finally {
      reading = false;
      await reader;
    }
    expect(reads).to.be.greaterThan(0);
    expect((await cluster.masterOf(slot)).port).to.equal(to.port);
    expect(await c.get(key)).to.equal('kept');
  });

  it('keys survive a master SIGKILL: its replica is promoted and serves them', async () => {
    const c = client();
    for (const k of KEYS) await c.set(k, `v-${k}`);
    // The replica must have the writes before its master dies.
    for (const k of KEYS) {
      const slot = Number(await c.call('CLUSTER', 'KEYSLOT', k));
      const m = await cluster.masterOf(slot);
      expect(Number(await cluster.cli(m.port, 'WAIT', '1', '2000'))).to.equal(1);
    }
    const slot = Number(await c.call('CLUSTER', 'KEYSLOT', KEYS[0]!));
    const { killed, promoted } = await cluster.killMaster({ slot });
    expect(promoted.port).to.not.equal(killed.port);
    expect((await cluster.masterOf(slot)).port).to.equal(promoted.port);
    expect(cluster.seeds).to.have.length(5);
    await eventually(async () => {
      for (const k of KEYS) expect(await c.get(k)).to.equal(`v-${k}`);
    }, { timeout: 10_000, interval: 100 });
  });
});
