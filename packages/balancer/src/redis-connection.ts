import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@herald/shared';

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
