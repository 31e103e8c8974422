import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@herald/shared';

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
  let last: string | undefined;
  redis.on('error', (error: Error) => {
    const repeat = error.message === last;
    last = error.message;
    if (repeat) return logger.debug({ err: error.message }, `redis ${role} connection error`);
    const hint = CERTIFICATE_ERROR.test(error.message) ? { hint: 'set HERALD_REDIS_CA to the PEM of the CA that signed the Redis certificate' } : {};
    logger.warn({ err: error.message, ...hint }, `redis ${role} connection error`);
  });
  redis.on('ready', () => (last = undefined));
  return redis;
}

/** Node's TLS verification failures (self-signed chain, unknown issuer, wrong host name, expired). */
const CERTIFICATE_ERROR = /certificate|self[- ]signed|unable to verify|altnames|CERT_/i;
