import { publishCommand, type RedisClusterSeed, type RedisKeys } from '@herald/shared';
import type { Cluster, Redis } from 'ioredis';
import { balancerKeys, balancerRedisFor } from './redis-connection.js';
import type { Logger } from 'pino';

/** Options of {@link RedisDrainRequest}. */
export interface RedisDrainRequestOptions {
  /** `redis://…` URL (the workers' Redis); or give `cluster`. */
  readonly url?: string;
  /** The workers' Redis Cluster: seeds and `HERALD_REDIS_PARTITIONS`. */
  readonly cluster?: { seeds: RedisClusterSeed[]; partitions: number };
  /** The workers' `HERALD_REDIS_PREFIX`. */
  readonly prefix: string;
  /** This balancer's id, as sent in `X-Herald-Balancer`. */
  readonly balancerId: string;
  /** TLS options of a `rediss://` URL (`HERALD_REDIS_CA`). @default undefined */
  readonly tls?: { ca: Buffer };
}

/**
 * How a stopping balancer asks the workers, through Redis, to drain the connections that came
 * through it: one `drain-balancer` admin command on the workers' broadcast channel. The
 * connection is opened at start (so a shutdown does not wait for a connect) and kept quiet until
 * then; it is separate from discovery's, which stops polling when the drain begins.
 */
export class RedisDrainRequest {
  private readonly redis: Redis | Cluster;
  private readonly keys: RedisKeys;

  constructor(
    private readonly options: RedisDrainRequestOptions,
    private readonly logger: Logger,
  ) {
    const target = options.cluster ? { cluster: options.cluster.seeds, partitions: options.cluster.partitions } : { url: options.url!, tls: options.tls };
    this.redis = balancerRedisFor(target, 'drain', logger);
    this.keys = balancerKeys(target, options.prefix);
  }

  /** Connects; a failure is logged, ioredis keeps retrying in the background. */
  async start(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'redis drain connection: cannot connect yet, will retry');
    }
  }

  /**
   * Asks every worker to close this balancer's connections with 1001, paced over `spreadMs`.
   *
   * @returns how many workers received the request
   * @throws when Redis cannot be reached
   */
  request(spreadMs: number): Promise<number> {
    return publishCommand(this.redis, this.keys, this.options.balancerId, {
      kind: 'drain-balancer',
      balancer: this.options.balancerId,
      spreadMs,
    });
  }

  stop(): void {
    this.redis.disconnect();
  }
}
