import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { RedisKeys, type Logger, type RedisClusterSeed } from '@herald/shared';

/**
 * A Redis connection of the balancer (discovery polls, the drain request at shutdown): commands
 * fail while disconnected instead of queueing (a poll that cannot run is skipped; the last known
 * worker list stays in force), connect on demand, reconnect with a capped backoff. A connection
 * error is logged at warn when it differs from the previous one (the cause — refused, a
 * certificate that does not verify — is what the operator needs; the callers' own warnings only
 * say that a poll failed), and its repeats at debug, so a Redis that stays down does not flood.
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
  logConnectionErrors(redis, 'error', `redis ${role} connection error`, logger);
  return redis;
}

/**
 * Logs `event` errors of a connection at warn when they differ from the previous one and at
 * debug when they repeat (see {@link balancerRedis}); `ready` starts over.
 */
function logConnectionErrors(connection: Redis | Cluster, event: 'error' | 'node error', msg: string, logger: Logger): void {
  let last: string | undefined;
  connection.on(event, (error: Error) => {
    const repeat = error.message === last;
    last = error.message;
    if (repeat) return logger.debug({ err: error.message }, msg);
    const hint = CERTIFICATE_ERROR.test(error.message) ? { hint: 'set HERALD_REDIS_CA to the PEM of the CA that signed the Redis certificate' } : {};
    logger.warn({ err: error.message, ...hint }, msg);
  });
  connection.on('ready', () => (last = undefined));
}

/** Node's TLS verification failures (self-signed chain, unknown issuer, wrong host name, expired). */
const CERTIFICATE_ERROR = /certificate|self[- ]signed|unable to verify|altnames|CERT_/i;

/** Where the balancer's Redis is: a URL (one Redis) or a Redis Cluster's seeds and partitions. */
export type BalancerRedisTarget = { url: string; tls?: RedisOptions['tls'] } | { cluster: RedisClusterSeed[]; partitions: number };

/** The Redis named in messages (redacted by the callers that log it): the URL, or the first seed of the cluster. */
export function redisTargetName(target: BalancerRedisTarget): string {
  if ('url' in target) return target.url;
  const seed = target.cluster[0];
  return `redis://${seed?.host}:${seed?.port}`;
}

/** The key names of `target` (hash-tagged on a cluster, as the workers write them). */
export function balancerKeys(target: BalancerRedisTarget, prefix: string): RedisKeys {
  return new RedisKeys(prefix, 'cluster' in target ? target.partitions : undefined);
}

/**
 * {@link balancerRedis} for either target: on a Redis Cluster an ioredis `Cluster` from the seeds
 * with the same rules (no offline queue, connect on demand, capped backoff, errors logged alike).
 */
export function balancerRedisFor(target: BalancerRedisTarget, role: string, logger: Logger): Redis | Cluster {
  if ('url' in target) return balancerRedis(target.url, role, logger, target.tls);
  const cluster = new Cluster(target.cluster, {
    enableOfflineQueue: false,
    lazyConnect: true,
    redisOptions: { maxRetriesPerRequest: 1 },
    clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  logConnectionErrors(cluster, 'error', `redis ${role} connection error`, logger);
  logConnectionErrors(cluster, 'node error', `redis ${role} node error`, logger);
  return cluster;
}
