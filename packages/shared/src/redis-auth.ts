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
 * Once ready, `probe` (when given) runs one command the bin needs on its own keys: an ACL user
 * that may log in but not touch the prefix (`~other:*`) gets `NOPERM` there, and that is the
 * same start-up error; a probe failing for any other reason resolves (the bin's own Redis
 * handling takes over).
 *
 * @param client - an ioredis client that is connecting (or about to)
 * @param url - its `REDIS_URL`, redacted into the error message
 * @param timeoutMs - longest wait for the connect. @default 5000
 * @param probe - a command on the bin's keys, run once ready. @default none
 */
export function checkRedisCredentials(client: EventEmitter & { readonly status: string }, url: string, timeoutMs = 5000, probe?: () => Promise<unknown>): Promise<void> {
  const refusal = (err: Error) => new RedisAuthError(`Redis at ${redactRedisUrl(url)} refused the credentials: ${err.message.split('\n', 1)[0]}`);
  const connected = client.status === 'ready' ? Promise.resolve(true) : new Promise<boolean>((resolve, reject) => {
    const done = (err?: Error, ready = false) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve(ready);
    };
    const onReady = () => done(undefined, true);
    const onError = (err: Error) => done(isRedisAuthRefusal(err) ? refusal(err) : undefined);
    const timer = setTimeout(() => done(), timeoutMs);
    timer.unref();
    client.on('ready', onReady);
    client.on('error', onError);
  });
  return connected.then(async (ready) => {
    if (!ready || !probe) return;
    try {
      await probe();
    } catch (err) {
      if (isRedisAuthRefusal(err)) throw refusal(err as Error);
    }
  });
}
