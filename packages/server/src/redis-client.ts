import type { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { isRedisAuthRefusal, type Logger } from '@herald/shared';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';

type Arg = string | Buffer | number;

/**
 * The commands Herald runs on its command connection. Everything with logic runs as a Lua
 * script, so this stays small, and a test can hand in a fake. An ioredis `Redis` satisfies it.
 */
export interface RedisCommandClient extends EventEmitter {
  /** ioredis connection status (`wait`, `connecting`, `connect`, `ready`, `close`, `reconnecting`, `end`). */
  readonly status: string;
  publish(channel: string | Buffer, message: string | Buffer): Promise<number>;
  evalsha(sha: string, numKeys: number, ...args: Arg[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: Arg[]): Promise<unknown>;
  evalshaBuffer(sha: string, numKeys: number, ...args: Arg[]): Promise<unknown>;
  evalBuffer(script: string, numKeys: number, ...args: Arg[]): Promise<unknown>;
  ping(): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
}

/** The subscriber connection: a `duplicate()` of the command connection. */
export interface RedisSubscriberClient extends EventEmitter {
  readonly status: string;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
}

/** Connection options of Herald's Redis clients. */
export interface RedisClientOptions {
  /**
   * A command without a reply after this many ms fails (and counts as Redis unavailable),
   * so a stopped Redis never hangs a publish. @default 2000
   */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect delay, in ms (full jitter below it). @default 1000 */
  reconnectMaxMs?: number;
  /** Connection name shown by `CLIENT LIST` (suffixed `:pub` / `:sub`). @default "herald" */
  name?: string;
  /** TLS options for a `rediss://` URL (a private CA from `HERALD_REDIS_CA`); `rediss://` alone uses the system's CAs. @default undefined */
  tls?: RedisOptions['tls'];
}

/**
 * Options shared by both connections. The offline queue is off and a command is never retried
 * across reconnects: while Redis is unreachable a command fails at once (the broker answers
 * `unavailable`) instead of piling up in memory. Subscriptions are restored by the broker
 * itself (`autoResubscribe: false`) so it knows when they are back.
 */
export function redisClientOptions(options: RedisClientOptions = {}): RedisOptions {
  const max = options.reconnectMaxMs ?? 1000;
  return {
    protocol: 2,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    enableAutoPipelining: true,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 5000,
    keepAlive: 10_000,
    connectionName: options.name ?? 'herald',
    ...(options.tls ? { tls: options.tls } : {}),
    // Full jitter: many workers losing Redis together do not reconnect in lockstep.
    retryStrategy: (times) => Math.round(Math.random() * Math.min(max, 50 * 2 ** Math.min(times, 10))) + 10,
  };
}

/** The two connections of a worker: commands/publishing and the subscriber. */
export interface RedisClients {
  publisher: RedisCommandClient;
  subscriber: RedisSubscriberClient;
}

/** Creates the publisher from `url` and its `duplicate()` subscriber, each with an `error` listener. */
export function createRedisClients(url: string, options: RedisClientOptions = {}, log?: Logger): RedisClients {
  const base = redisClientOptions(options);
  const name = base.connectionName!;
  const publisher = new Redis(url, { ...base, connectionName: `${name}:pub` });
  // Auto-pipelining batches commands of one tick; it buys nothing for SUBSCRIBE, so keep it off there.
  const subscriber = publisher.duplicate({ connectionName: `${name}:sub`, enableAutoPipelining: false });
  watchClient(publisher, 'publisher', log);
  watchClient(subscriber, 'subscriber', log);
  // ioredis generates a `…Buffer` variant of every command (evalshaBuffer, evalBuffer) but its
  // type declarations omit these two; everything else of the narrow interfaces type-checks.
  return { publisher: publisher as Redis & Pick<RedisCommandClient, 'evalshaBuffer' | 'evalBuffer'>, subscriber };
}

const STATUS_EVENTS = ['connecting', 'connect', 'ready', 'close', 'reconnecting', 'end'] as const;

/**
 * Attaches the `error` listener every client needs (an unhandled `error` event would crash
 * the worker) and logs status changes as `old -> new`: at info when the client gains or
 * loses `ready`, at debug otherwise (a reconnect loop is not worth a line per attempt).
 */
export function watchClient(client: EventEmitter & { status: string }, role: string, log?: Logger): void {
  let last = client.status;
  let lastError = '';
  client.on('error', (err: Error) => {
    // The same error repeats on every reconnect attempt; log it once until it changes. Refused
    // credentials are an error (reconnecting will not fix them); at start-up they end the process.
    if (err.message !== lastError) log?.[isRedisAuthRefusal(err) ? 'error' : 'warn']({ err: err.message, redis: role }, `redis ${role} error`);
    lastError = err.message;
  });
  for (const event of STATUS_EVENTS) {
    client.on(event, () => {
      const next = event;
      if (next === last) return;
      const line = `redis ${role}: ${last} -> ${next}`;
      if (next === 'ready' || last === 'ready') log?.info({ redis: role, from: last, to: next }, line);
      else log?.debug({ redis: role, from: last, to: next }, line);
      if (next === 'ready') lastError = '';
      last = next;
    });
  }
}

/**
 * Maps a failed Redis call to {@link BrokerUnavailableError} (the client gets `unavailable`).
 * An error reply from Redis itself (a script bug, OOM) is logged at error level, since a
 * reconnect will not fix it.
 */
export function toUnavailable(err: unknown, what: string, log?: Logger): BrokerUnavailableError {
  if (err instanceof BrokerUnavailableError) return err;
  const e = err as Error;
  if (e?.name === 'ReplyError') log?.error({ err: e }, `redis ${what} failed`);
  return new BrokerUnavailableError(`${what}: ${e?.message ?? String(err)}`);
}
