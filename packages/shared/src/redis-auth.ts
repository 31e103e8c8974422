import type { EventEmitter } from 'node:events';
import { RedisAuthError } from './errors/redis-auth-error.js';

/** Error replies that mean "these credentials are wrong or lack rights", not "Redis is down". */
const AUTH_REPLY = /^(WRONGPASS|NOAUTH|NOPERM)\b/;

/** @returns whether `err` is Redis refusing the connection's credentials or rights */
export function isRedisAuthRefusal(err: unknown): boolean {
  return AUTH_REPLY.test(String((err as Error)?.message ?? ''));
}

/**
 * `REDIS_URL` fit for a log line: the password (and only it) becomes `***`, the user stays
 * (which ACL user was refused is what the operator needs to know).
 */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable REDIS_URL)';
  }
}

/**
 * Waits for the first outcome of a Redis client's first connect: `ready` resolves, an auth
 * refusal rejects with {@link RedisAuthError}, any other error (refused, timeout, TLS) or
 * `timeoutMs` without an outcome resolves too, so a Redis that is down at start-up keeps the
 * bin's start-unavailable-and-reconnect behaviour.
 *
 * @param client - an ioredis client that is connecting (or about to)
 * @param url - its `REDIS_URL`, redacted into the error message
 * @param timeoutMs - longest wait. @default 5000
 */
export function checkRedisCredentials(client: EventEmitter & { readonly status: string }, url: string, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onError = (err: Error) => {
      if (isRedisAuthRefusal(err)) done(new RedisAuthError(`Redis at ${redactRedisUrl(url)} refused the credentials: ${err.message.split('\n', 1)[0]}`));
      else done();
    };
    const timer = setTimeout(() => done(), timeoutMs);
    timer.unref();
    client.on('ready', onReady);
    client.on('error', onError);
  });
}
