import { EventEmitter } from 'node:events';
import { Cluster, type ClusterOptions } from 'ioredis';
import type { Logger, RedisClusterSeed } from '@herald/shared';
import { redisClientOptions, watchClient, type RedisClientOptions, type RedisClients, type RedisCommandClient, type RedisSubscriberClient } from './redis-client.js';

type Arg = string | Buffer | number;

/**
 * The options of Herald's ioredis `Cluster` (one function, so connection settings such as TLS
 * are added in one place). Node connections get {@link redisClientOptions} (command timeout, no
 * retries across reconnects); `shardedSubscribers` gives one SSUBSCRIBE connection per master
 * (ioredis ≥ 5.9), so a worker holds at most 2 × masters connections whatever its channel count.
 */
export function redisClusterOptions(options: RedisClientOptions = {}): ClusterOptions {
  const { retryStrategy: _perNode, ...redisOptions } = redisClientOptions(options);
  const max = options.reconnectMaxMs ?? 1000;
  return {
    redisOptions,
    shardedSubscribers: true,
    // Commands fail at once while the cluster is not ready (the broker answers `unavailable`).
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    // ioredis 6.0.0 exempts SUBSCRIBE/UNSUBSCRIBE from auto-pipelining but not their sharded
    // forms: an SSUBSCRIBE batched with a script of the same slot sends the script down the
    // subscriber connection ("Connection in subscriber mode"). test/redis-cluster.test.ts.
    autoPipeliningIgnoredCommands: ['ssubscribe', 'sunsubscribe'],
    clusterRetryStrategy: (times) => Math.round(Math.random() * Math.min(max, 50 * 2 ** Math.min(times, 10))) + 10,
    // A failover takes cluster-node-timeout plus an election: retry a command a few times on the
    // new topology within the command timeout instead of failing at the first closed connection.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 50,
    // Notices a promoted replica or moved slots even when no command hit MOVED.
    slotsRefreshInterval: 1000,
  };
}

/**
 * Pings the master of every slot: fails while a slot's master is unreachable (killed, not yet
 * replaced by its replica), so the broker is `unavailable` for that window instead of half up.
 */
async function pingMasters(cluster: Cluster): Promise<void> {
  const masters = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
  const owners = new Set<string>();
  for (const slot of cluster.slots) if (slot?.[0]) owners.add(slot[0]);
  if (owners.size === 0) throw new Error('redis cluster: no slot map yet');
  await Promise.all(
    [...owners].map((key) => {
      const node = masters.get(key);
      if (!node) throw new Error(`redis cluster: master ${key} is not connected`);
      return node.ping();
    }),
  );
}

/** Which master serves which slots, as a string: equal strings = the same slot map. */
function slotMap(cluster: Cluster): string {
  const out: string[] = [];
  let last: string | undefined;
  for (let slot = 0; slot < cluster.slots.length; slot++) {
    const owner = cluster.slots[slot]?.[0] ?? '-';
    if (owner !== last) out.push(`${slot}:${owner}`);
    last = owner;
  }
  return out.join(',');
}

/** The hash tag of a key (`{…}`), which decides its slot; the whole key when it has none. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** Groups keys by hash tag: SSUBSCRIBE through ioredis takes channels of one slot per call. */
function bySlot(keys: string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const k of keys) {
    const tag = hashTag(k);
    const g = groups.get(tag);
    if (g) g.push(k);
    else groups.set(tag, [k]);
  }
  return [...groups.values()];
}

const FORWARDED = ['connecting', 'connect', 'ready', 'close', 'reconnecting', 'end', 'error'] as const;

/**
 * The command side of a `Cluster` as a {@link RedisCommandClient}: `publish` is SPUBLISH (the
 * workers subscribe with SSUBSCRIBE), scripts are routed by their first key's slot, and `ping`
 * checks every slot's master.
 */
class ClusterCommandClient extends EventEmitter implements RedisCommandClient {
  constructor(private readonly cluster: Cluster) {
    super();
    for (const ev of FORWARDED) cluster.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
  }

  get status(): string {
    return this.cluster.status;
  }

  publish(channel: string | Buffer, message: string | Buffer): Promise<number> {
    return this.cluster.spublish(channel, message) as Promise<number>;
  }

  evalsha(sha: string, numKeys: number, ...args: Arg[]): Promise<unknown> {
    return this.cluster.evalsha(sha, numKeys, ...args);
  }

  eval(script: string, numKeys: number, ...args: Arg[]): Promise<unknown> {
    return this.cluster.eval(script, numKeys, ...args);
  }

  evalshaBuffer(sha: string, numKeys: number, ...args: Arg[]): Promise<unknown> {
    // Generated by ioredis for every command, missing from its type declarations (as in redis-client.ts).
    return (this.cluster as unknown as RedisCommandClient).evalshaBuffer(sha, numKeys, ...args);
  }

  evalBuffer(script: string, numKeys: number, ...args: Arg[]): Promise<unknown> {
    return (this.cluster as unknown as RedisCommandClient).evalBuffer(script, numKeys, ...args);
  }

  ping(): Promise<unknown> {
    return pingMasters(this.cluster);
  }

  quit(): Promise<unknown> {
    return this.cluster.quit();
  }

  /**
   * `disconnect(true)` (the broker's probe found a master not answering) does nothing: ioredis
   * reconnects node by node and follows failovers; dropping every node would interrupt the
   * healthy shards too. `disconnect(false)` closes the cluster.
   */
  disconnect(reconnect = false): void {
    if (!reconnect) this.cluster.disconnect();
  }
}

/**
 * The sharded subscriptions of a `Cluster` as a {@link RedisSubscriberClient}, for the broker's
 * continuity rules. ioredis keeps one subscriber per master and resubscribes after topology
 * changes, but tells nothing about which subscriptions were interrupted. So this client reports
 * every event that may have interrupted one — a subscriber connection ending (`-node` with a node
 * key: its master died) or replaced (`-subscriber`), a new slot map (`subscribersReady` after a
 * failover or a slot migration, after which Redis had dropped the moved channels with an
 * unsolicited SUNSUBSCRIBE; a `subscribersReady` with the slot map unchanged is ignored), a failed
 * SSUBSCRIBE — as `close` followed by `ready` once the cluster is ready again: the broker then subscribes
 * every channel again (awaited, so they are in place) and fills each gap from history, or sends
 * `lost`. It errs on the side of a gap fill too many (cheap: one read per history channel).
 * Checked against ioredis 6.0.0 (`-node` is emitted with the node key only for sharded subscribers).
 */
class ClusterSubscriberClient extends EventEmitter implements RedisSubscriberClient {
  private up = false;
  private retryTimer?: NodeJS.Timeout;
  private retries = 0;
  private ended = false;
  /** The slot map the subscriptions were last made on ({@link slotMap}). */
  private slots = '';

  constructor(private readonly cluster: Cluster) {
    super();
    cluster.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.emit('messageBuffer', channel, message));
    cluster.on('error', (err: Error) => this.emit('error', err));
    cluster.on('ready', () => {
      this.slots = slotMap(cluster);
      this.interrupted(0);
    });
    cluster.on('subscribersReady', () => {
      const slots = slotMap(cluster);
      if (slots === this.slots && this.up) return;
      this.slots = slots;
      this.interrupted(0);
    });
    cluster.on('-subscriber', () => this.interrupted());
    cluster.on('-node', (_redis: unknown, nodeKey?: string) => {
      if (nodeKey !== undefined) this.interrupted();
    });
    for (const ev of ['close', 'reconnecting'] as const) cluster.on(ev, () => this.down(ev));
    cluster.on('end', () => {
      this.ended = true;
      this.down('end');
    });
  }

  get status(): string {
    if (this.ended) return 'end';
    return this.up && this.cluster.status === 'ready' ? 'ready' : this.cluster.status === 'ready' ? 'reconnecting' : this.cluster.status;
  }

  private down(event: 'close' | 'reconnecting' | 'end'): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const was = this.up;
    this.up = false;
    if (was || event === 'end') this.emit(event === 'end' ? 'end' : 'close');
  }

  /**
   * Something may have dropped subscriptions: `close` now (if up), `ready` after `delayMs`
   * (backing off while attempts fail) when the cluster can take commands.
   */
  private interrupted(delayMs?: number): void {
    if (this.ended) return;
    if (this.up) {
      this.up = false;
      this.emit('close');
    }
    if (this.retryTimer) return;
    const delay = delayMs ?? Math.min(2000, 100 * 2 ** Math.min(this.retries, 5));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.ended || this.up) return;
      if (this.cluster.status !== 'ready') return; // the cluster's own `ready` brings it back
      this.up = true;
      this.emit('ready');
    }, delay);
    this.retryTimer.unref();
  }

  async subscribe(...channels: string[]): Promise<unknown> {
    try {
      await Promise.all(bySlot(channels).map((group) => this.cluster.ssubscribe(...group)));
      this.retries = 0;
    } catch (err) {
      // A shard without a reachable master: the channels it serves are not subscribed. ioredis
      // keeps them and subscribes them again with the next topology; report a gap meanwhile.
      this.retries++;
      this.interrupted();
      throw err;
    }
    return channels.length;
  }

  async unsubscribe(...channels: string[]): Promise<unknown> {
    await Promise.all(bySlot(channels).map((group) => this.cluster.sunsubscribe(...group)));
    return channels.length;
  }

  ping(): Promise<unknown> {
    return pingMasters(this.cluster);
  }

  /** The cluster is closed by the command client's `quit`; this one only stops reporting. */
  quit(): Promise<unknown> {
    this.ended = true;
    clearTimeout(this.retryTimer);
    return Promise.resolve('OK');
  }

  /** `disconnect(true)`: the broker saw a failure; subscribe everything again shortly. */
  disconnect(reconnect = false): void {
    if (reconnect) {
      this.retries++;
      this.interrupted();
    } else {
      this.ended = true;
      clearTimeout(this.retryTimer);
    }
  }
}

/**
 * Connects to a Redis Cluster from its seed nodes (`HERALD_REDIS_CLUSTER`): one ioredis `Cluster`
 * with sharded subscribers, seen by the broker as a publisher and a subscriber client (same
 * interfaces as on one Redis, `createRedisClients`), each with an `error` listener.
 */
export function createRedisClusterClients(seeds: RedisClusterSeed[], options: RedisClientOptions = {}, log?: Logger): RedisClients {
  const base = redisClusterOptions(options);
  const cluster = new Cluster(seeds, base);
  const publisher = new ClusterCommandClient(cluster);
  const subscriber = new ClusterSubscriberClient(cluster);
  watchClient(publisher, 'cluster', log);
  subscriber.on('error', () => undefined);
  cluster.on('node error', (err: Error, key: string) => log?.debug({ err: err.message, node: key }, 'redis cluster node error'));
  return { publisher, subscriber };
}
