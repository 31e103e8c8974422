import { checkRedisCredentials, listLiveNodes, type RedisKeys } from '@herald/shared';
import type { Cluster, Redis } from 'ioredis';
import { balancerKeys, balancerRedisFor, redisTargetName, type BalancerRedisTarget } from './redis-connection.js';
import type { Logger } from '@herald/shared';
import type { DiscoveredWorker, Discovery } from './discovery.js';
import { parseWorkerAddress } from './worker-address.js';

/** Options of {@link RedisDiscovery}. */
export interface RedisDiscoveryOptions {
  /** One Redis (a URL with its TLS options) or a Redis Cluster (seeds and partitions; the records are under the `{nodes}` tag). */
  readonly target: BalancerRedisTarget;
  /** Key prefix of the membership records. @default 'herald:' */
  readonly prefix: string;
  /** Poll interval. @default 1000 */
  readonly intervalMs: number;
}

/**
 * Reads the workers' membership records (see docs/deploy.md): `{prefix}nodes` is a sorted set
 * of node ids scored by lease expiry, `{prefix}node:{id}` a JSON record with a TTL. Live workers
 * are the ids whose lease has not expired and whose record still exists.
 */
export class RedisDiscovery implements Discovery {
  readonly name = 'redis' as const;
  private readonly redis: Redis | Cluster;
  private readonly keys: RedisKeys;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failing = false;

  constructor(
    private readonly options: RedisDiscoveryOptions,
    private readonly logger: Logger,
  ) {
    this.redis = balancerRedisFor(options.target, 'discovery', logger);
    this.keys = balancerKeys(options.target, options.prefix);
  }

  async start(onUpdate: (workers: DiscoveredWorker[]) => void): Promise<void> {
    this.stopped = false;
    // Refused credentials end the start-up (RedisAuthError); an unreachable Redis does not.
    // Settled into a value at once: it may reject before connect() does.
    const probe = () => this.redis.exists(this.keys.nodes);
    const refused = checkRedisCredentials(this.redis, redisTargetName(this.options.target), 5000, probe).then(() => undefined, (error: Error) => error);
    let connectError: Error | undefined;
    try {
      await this.redis.connect();
    } catch (error) {
      connectError = error as Error;
    }
    const authError = await refused;
    if (authError) {
      this.redis.disconnect();
      throw authError;
    }
    if (connectError) this.logger.warn({ err: connectError.message }, 'redis discovery: cannot connect yet, will retry');
    const poll = async () => {
      if (this.stopped) return;
      try {
        const workers = await this.read();
        if (this.failing) this.logger.info('redis discovery: reading membership records again');
        this.failing = false;
        onUpdate(workers);
      } catch (error) {
        if (!this.failing) this.logger.warn({ err: (error as Error).message }, 'redis discovery failed; keeping the last worker list');
        this.failing = true;
      }
      if (this.stopped) return;
      this.timer = setTimeout(() => void poll(), this.options.intervalMs);
      this.timer.unref();
    };
    await poll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.redis.disconnect();
  }

  /**
   * One read of the membership records.
   *
   * @returns the live workers, one per address (the most recent heartbeat wins when a restarted
   *   worker's old record still exists for the same address)
   */
  async read(): Promise<DiscoveredWorker[]> {
    const byAddress = new Map<string, { address: string; nodeId: string; heartbeat: number }>();
    for (const record of await listLiveNodes(this.redis, this.keys)) {
      try {
        parseWorkerAddress(record.address);
      } catch {
        this.logger.debug({ node: record.id }, 'redis discovery: ignoring a record with a bad address');
        continue;
      }
      const heartbeat = typeof record.heartbeat === 'number' ? record.heartbeat : 0;
      const prior = byAddress.get(record.address);
      if (!prior || prior.heartbeat < heartbeat) byAddress.set(record.address, { address: record.address, nodeId: record.id, heartbeat });
    }
    return [...byAddress.values()].map(({ address, nodeId }) => ({ address, nodeId }));
  }
}
