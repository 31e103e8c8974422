import type { WebSocketConstructor } from './websocket-like.js';
import type { TransportName } from './transport.js';
import type { EventSourceConstructor, FetchLike } from './http-transport.js';

/** How the token reaches the worker (SPEC §4). */
export type TokenTransport = 'query' | 'protocol' | 'frame';

/** Options of {@link Client}. Every limit has a default, stated with `@default`. */
export interface ClientOptions {
  /**
   * The WebSocket constructor. Required in Node 20 (pass `WebSocket` from `ws`).
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /** A JWT to authenticate with. When absent and `getToken` is set, `getToken` is called before connecting. */
  token?: string;
  /**
   * Called for a token before connecting when there is none, and again after the server closed
   * with 4001 (expired or invalid token). Without it a 4001 stops the client (`disconnected`,
   * `error` event with an `UnauthorizedError`). Returning an empty string or throwing also stops it.
   */
  getToken?: () => string | Promise<string>;
  /**
   * How the token is passed: `query` (`?token=`), `protocol` (a `Sec-WebSocket-Protocol` entry
   * `herald.token.<jwt>` next to `herald.v1`, for browsers that must keep tokens out of URLs and
   * logs) or `frame` (a first `{"type":"auth"}` frame once the socket opens).
   * @default 'query'
   */
  tokenTransport?: TokenTransport;
  /** Extra query parameters added to the URL, e.g. `{ user: 'alice' }` (anonymous mode) or `{ sid }` (balancer stickiness). */
  params?: Record<string, string>;
  /**
   * Smallest reconnect delay in ms (first retry waits between this and twice this).
   * @default 500
   */
  minReconnectDelay?: number;
  /**
   * Largest reconnect delay in ms.
   * @default 20000
   */
  maxReconnectDelay?: number;
  /**
   * Least delay in ms before reconnecting after a 4029 (rate limited) close.
   * @default 10000
   */
  rateLimitedDelay?: number;
  /**
   * Ms to wait for the `welcome` frame after starting an attempt; then the attempt counts as failed.
   * @default 10000
   */
  connectTimeout?: number;
  /**
   * Ms a request (`publish`, `send`, `presence`, subscribe ack) may take, counted from the call,
   * time spent in the offline queue included. Then its promise rejects with a `TimeoutError`.
   * @default 10000
   */
  requestTimeout?: number;
  /**
   * Ms without any frame from the server after which the client sends `{"type":"ping"}`.
   * 0 turns the watchdog off.
   * @default 25000
   */
  pingInterval?: number;
  /**
   * Ms to wait for any frame (the `pong` or anything else) after a ping before the link counts as
   * dead; the client then drops the socket and reconnects (close code 4000, reason `ping timeout`).
   * @default 10000
   */
  pongTimeout?: number;
  /**
   * How many requests (`publish`, `send`, `presence`) may wait while the client is connecting or
   * reconnecting; past that they reject with a `QueueFullError`.
   * @default 100
   */
  maxQueue?: number;
  /**
   * Transports to use, in order of preference: `websocket` (`/ws`), `sse` (`GET /sse` plus
   * `POST /emit`) and `long-polling` (`GET /poll` plus `POST /emit`). The client starts with the
   * first available one (`websocket` needs a WebSocket constructor, the others `fetch`) and moves
   * to the next after {@link fallbackAfter} failed attempts in a row.
   * @default ['websocket', 'sse', 'long-polling']
   */
  transports?: TransportName[];
  /**
   * Failed attempts in a row (closed or timed out before the `welcome` frame) after which the
   * client falls back to the next transport of {@link transports}.
   * @default 2
   */
  fallbackAfter?: number;
  /**
   * While connected on a fallback, the client tries a WebSocket this often (a probe beside the
   * working connection); when one opens, it reconnects over WebSocket and its subscriptions resume
   * from their positions (`since`), so history channels lose nothing. 0 turns probing off.
   * @default 30000
   */
  probeInterval?: number;
  /** `fetch` for the HTTP fallback transports. @default globalThis.fetch */
  fetch?: FetchLike;
  /**
   * The EventSource constructor for `sse`; `null` streams with `fetch` instead (what Node does).
   * @default globalThis.EventSource
   */
  EventSource?: EventSourceConstructor | null;
  /**
   * Random source of the backoff jitter, in [0, 1). Tests can make it deterministic.
   * @default Math.random
   */
  random?: () => number;
}

/** {@link ClientOptions} with every default applied. */
export type ResolvedOptions = Required<Omit<ClientOptions, 'WebSocket' | 'token' | 'getToken' | 'params' | 'fetch' | 'EventSource'>> &
  Pick<ClientOptions, 'token' | 'getToken'> & {
    WebSocket?: WebSocketConstructor;
    params: Record<string, string>;
    fetch?: FetchLike;
    EventSource?: EventSourceConstructor;
  };

const TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'long-polling'];

/**
 * Applies the defaults; throws a `TypeError` on an unknown transport, or when none of the
 * transports can run (no WebSocket constructor and no `fetch`).
 */
export function resolveOptions(options: ClientOptions = {}): ResolvedOptions {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const fetchFn = options.fetch ?? (typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : undefined);
  const EventSourceCtor = options.EventSource === null ? undefined : (options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource);
  const transports = options.transports ?? [...TRANSPORTS];
  if (!Array.isArray(transports) || transports.length === 0 || transports.some((t) => !TRANSPORTS.includes(t))) {
    throw new TypeError(`option transports must be a non-empty list of ${TRANSPORTS.join(', ')}`);
  }
  const usable = transports.filter((t) => (t === 'websocket' ? Ctor !== undefined : fetchFn !== undefined));
  if (usable.length === 0) throw new TypeError('no usable transport: pass { WebSocket } (e.g. from the "ws" package), or use an HTTP fallback transport where fetch exists');
  const num = (v: number | undefined, d: number, name: string): number => {
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`option ${name} must be a number >= 0`);
    return v;
  };
  const minReconnectDelay = num(options.minReconnectDelay, 500, 'minReconnectDelay');
  return {
    WebSocket: Ctor,
    fetch: fetchFn,
    EventSource: EventSourceCtor,
    transports: usable,
    fallbackAfter: Math.max(1, num(options.fallbackAfter, 2, 'fallbackAfter')),
    probeInterval: num(options.probeInterval, 30000, 'probeInterval'),
    token: options.token,
    getToken: options.getToken,
    tokenTransport: options.tokenTransport ?? 'query',
    params: options.params ?? {},
    minReconnectDelay,
    maxReconnectDelay: Math.max(minReconnectDelay, num(options.maxReconnectDelay, 20000, 'maxReconnectDelay')),
    rateLimitedDelay: num(options.rateLimitedDelay, 10000, 'rateLimitedDelay'),
    connectTimeout: num(options.connectTimeout, 10000, 'connectTimeout'),
    requestTimeout: num(options.requestTimeout, 10000, 'requestTimeout'),
    pingInterval: num(options.pingInterval, 25000, 'pingInterval'),
    pongTimeout: num(options.pongTimeout, 10000, 'pongTimeout'),
    maxQueue: num(options.maxQueue, 100, 'maxQueue'),
    random: options.random ?? Math.random,
  };
}
