import type { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

/** Resolves with the first emission of `event` (its arguments), or rejects naming it after `ms`. */
export function waitFor<T = unknown[]>(emitter: EventEmitter, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const on = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, on);
  });
}

/**
 * Polls `fn` until it returns (or resolves) without throwing, then returns its value.
 * Rejects with the last error after `timeout` ms. Polling is not a sleep: it stops as soon as the condition holds.
 */
export async function eventually<T>(fn: () => T | Promise<T>, { timeout = 5000, interval = 20 } = {}): Promise<T> {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
    }
    await delay(interval);
  }
}

/** A callback that calls `done` on its n-th call and throws when called more often. */
export function times(n: number, done: () => void): () => void {
  let count = 0;
  return () => {
    count++;
    if (count === n) done();
    else if (count > n) throw new Error(`called ${count} times, expected ${n}`);
  };
}

/** Rejects after `ms` with a message; for racing against a promise that must not settle. */
export function deadline(ms: number, what: string): Promise<never> {
  return delay(ms).then(() => {
    throw new Error(`timed out after ${ms} ms: ${what}`);
  });
}
