import { expect } from 'chai';
import { loadConfig as loadWorkerConfig } from '@herald/server';
import { loadConfig as loadBalancerConfig } from '@herald/balancer';
import { ConfigError, RedisKeys, parseClusterSeed, partitionOf } from '@herald/shared';

describe('Redis Cluster settings and key layout (unit)', () => {
  const SEEDS = '127.0.0.1:7000, 10.0.0.2:7001,[::1]:7002';

  it('reads HERALD_REDIS_CLUSTER seeds and HERALD_REDIS_PARTITIONS (default 128) in the worker and the balancer alike', () => {
    const seeds = [
      { host: '127.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ];
    const w = loadWorkerConfig({ HERALD_REDIS_CLUSTER: SEEDS });
    expect(w).to.deep.include({ redisCluster: seeds, redisPartitions: 128, redisUrl: undefined });
    const b = loadBalancerConfig({ HERALD_REDIS_CLUSTER: SEEDS, HERALD_REDIS_PARTITIONS: '64' });
    expect(b).to.deep.include({ redisCluster: seeds, redisPartitions: 64, redisUrl: undefined });
    expect(b.workers).to.deep.equal([]);
  });

  it('refuses REDIS_URL together with HERALD_REDIS_CLUSTER, naming both', () => {
    for (const load of [loadWorkerConfig, loadBalancerConfig]) {
      expect(() => load({ REDIS_URL: 'redis://127.0.0.1:6380', HERALD_REDIS_CLUSTER: SEEDS }))
        .to.throw(ConfigError)
        .with.property('message')
        .that.matches(/REDIS_URL.*HERALD_REDIS_CLUSTER|HERALD_REDIS_CLUSTER.*REDIS_URL/);
    }
  });

  it('refuses bad seeds, partitions out of range and a prefix with braces', () => {
    expect(() => loadWorkerConfig({ HERALD_REDIS_CLUSTER: '127.0.0.1' })).to.throw(ConfigError, /HERALD_REDIS_CLUSTER: "127.0.0.1" is not host:port/);
    expect(() => loadWorkerConfig({ HERALD_REDIS_CLUSTER: 'h:70000' })).to.throw(ConfigError, /HERALD_REDIS_CLUSTER/);
    expect(() => loadWorkerConfig({ HERALD_REDIS_CLUSTER: ' , ' })).to.throw(ConfigError, /HERALD_REDIS_CLUSTER/);
    expect(() => loadWorkerConfig({ HERALD_REDIS_CLUSTER: SEEDS, HERALD_REDIS_PARTITIONS: '0' })).to.throw(ConfigError, /HERALD_REDIS_PARTITIONS/);
    expect(() => loadWorkerConfig({ HERALD_REDIS_CLUSTER: SEEDS, HERALD_REDIS_PREFIX: 'a{b}:' })).to.throw(ConfigError, /HERALD_REDIS_PREFIX/);
    // One Redis has no hash tags: braces stay allowed there.
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:6380', HERALD_REDIS_PREFIX: 'a{b}:' }).redisPrefix).to.equal('a{b}:');
    expect(() => parseClusterSeed('[zz]:1')).to.throw(/not host:port/);
  });

  it('keeps the single-instance names unchanged', () => {
    const k = new RedisKeys('h:');
    expect([k.nodes, k.node('w1'), k.historyMeta('room:1'), k.historyList('room:1'), k.presence('room:1'), k.nodePresence('w1'), k.channel('room:1'), k.user('bob'), k.nodeChannel('w1'), k.broadcast, k.sweepLock]).to.deep.equal([
      'h:nodes', 'h:node:w1', 'h:h:room:1', 'h:hl:room:1', 'h:p:room:1', 'h:pn:w1', 'h:ch:room:1', 'h:u:bob', 'h:n:w1', 'h:all', 'h:sweep-lock',
    ]);
    expect(k.clustered).to.equal(false);
    expect(k.scopes()).to.deep.equal(['h:']);
  });

  it('tags every name on a cluster: one partition tag for all of a channel, {nodes} for membership', () => {
    const k = new RedisKeys('h:', 128);
    const n = partitionOf('room:1', 128);
    const tag = `h:{${n}}`;
    expect([k.historyMeta('room:1'), k.historyList('room:1'), k.presence('room:1'), k.channel('room:1'), k.nodePresence('w1', k.scope('room:1'))]).to.deep.equal([
      `${tag}h:room:1`, `${tag}hl:room:1`, `${tag}p:room:1`, `${tag}ch:room:1`, `${tag}pn:w1`,
    ]);
    expect([k.nodes, k.node('w1'), k.sweepLock, k.broadcast]).to.deep.equal(['h:{nodes}nodes', 'h:{nodes}node:w1', 'h:{nodes}sweep-lock', 'h:{nodes}all']);
    expect(k.user('bob')).to.equal(`h:{${partitionOf('bob', 128)}}u:bob`);
    expect(k.nodeChannel('w1')).to.equal(`h:{${partitionOf('w1', 128)}}n:w1`);
    expect(k.scopes()).to.have.length(128);
    // A channel name with braces of its own cannot move the tag: the first {…} decides the slot.
    expect(k.channel('a{x}b').startsWith(`h:{${partitionOf('a{x}b', 128)}}`)).to.equal(true);
  });

  it('spreads channels evenly over partitions, the same way in every process', () => {
    expect(partitionOf('room:1', 128)).to.equal(partitionOf('room:1', 128));
    // FNV-1a of "a" is 0xe40c292c; pinned, since workers and balancers of one deployment must agree.
    expect(partitionOf('a', 2 ** 31)).to.equal(0xe40c292c % 2 ** 31);
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(`room:${i}`, 16)]!++;
    for (const c of counts) expect(c).to.be.within(800, 1200);
  });
});
