import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { RedisKeys, type Logger, type RedisClusterSeed } from '@herald/shared';

/**
 * A Redis connection of the balancer (discovery polls, the drain request at shutdown): commands
 * fail while disconnected instead of queueing (a poll that cannot run is skipped; the last known
 * worker list stays in force), connect on demand, reconnect with a capped backoff, and errors
 * are logged at debug as `redis <role> connection error` (the callers report what failed).
 * `tls` carries a private CA for `rediss://` (`HERALD_REDIS_CA`); `rediss://` alone uses the system's CAs.
 */
export function balancerRedis(url: string, role: string, logger: Logger, tls?: RedisOptions['tls']): Redis {
  const redis = new Redis(url, {
    ...(tls ? { tls } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  redis.on('error', (error: Error) => logger.debug({ err: error.message }, `redis ${role} connection error`));
  return redis;
}

/** Where the balancer's Redis is: a URL (one Redis) or a Redis Cluster's seeds and partitions. */
export type BalancerRedisTarget = { url: string; tls?: RedisOptions['tls'] } | { cluster: RedisClusterSeed[]; partitions: number };

/** The key names of `target` (hash-tagged on a cluster, as the workers write them). */
export function balancerKeys(target: BalancerRedisTarget, prefix: string): RedisKeys {
  return new RedisKeys(prefix, 'cluster' in target ? target.partitions : undefined);
}

/**
 * {@link balancerRedis} for either target: on a Redis Cluster an ioredis `Cluster` from the seeds
 * with the same rules (no offline queue, connect on demand, capped backoff, errors at debug).
 */
export function balancerRedisFor(target: BalancerRedisTarget, role: string, logger: Logger): Redis | Cluster {
  if ('url' in target) return balancerRedis(target.url, role, logger, target.tls);
  const cluster = new Cluster(target.cluster, {
    enableOfflineQueue: false,
    lazyConnect: true,
    redisOptions: { maxRetriesPerRequest: 1 },
    clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  cluster.on('error', (error: Error) => logger.debug({ err: error.message }, `redis ${role} connection error`));
  cluster.on('node error', (error: Error) => logger.debug({ err: error.message }, `redis ${role} node error`));
  return cluster;
}
