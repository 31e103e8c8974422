import { publishCommand, type RedisKeys } from '@herald/shared';
import type { Cluster, Redis } from 'ioredis';
import { balancerKeys, balancerRedisFor, type BalancerRedisTarget } from './redis-connection.js';
import type { Logger } from 'pino';

/** Options of {@link RedisDrainRequest}. */
export interface RedisDrainRequestOptions {
  /** The workers' Redis: a URL (with its TLS options) or a Redis Cluster's seeds and partitions. */
  readonly target: BalancerRedisTarget;
  /** The workers' `HERALD_REDIS_PREFIX`. */
  readonly prefix: string;
  /** This balancer's id, as sent in `X-Herald-Balancer`. */
  readonly balancerId: string;
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
    this.redis = balancerRedisFor(options.target, 'drain', logger);
    this.keys = balancerKeys(options.target, options.prefix);
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
