import {
  CloseCode,
  decodeBinaryFrame,
  decodeServerFrame,
  encodeBinaryFrame,
  encodeClientFrame,
  HERALD_PROTOCOL,
  TOKEN_PROTOCOL_PREFIX,
  isValidChannel,
  reconnectAdvice,
  type AckFrame,
  type ClientFrame,
  type PresenceMember,
  type ServerFrame,
  type StreamPosition,
  type WelcomeFrame,
} from '@herald/protocol';
import { backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { ClientClosedError } from './errors/client-closed-error.js';
import { ConnectionClosedError } from './errors/connection-closed-error.js';
import { HeraldError } from './errors/herald-error.js';
import { QueueFullError } from './errors/queue-full-error.js';
import { ServerError } from './errors/server-error.js';
import { TimeoutError } from './errors/timeout-error.js';
import { UnauthorizedError } from './errors/unauthorized-error.js';
import { OfflineQueue } from './offline-queue.js';
import type { Operation } from './operation.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { PendingRequests } from './pending-requests.js';
import { PingWatchdog } from './ping-watchdog.js';
import { State, type StateChange } from './state.js';
import { Subscription, type PublishResult, type SubscribeHandlers, type SubscriptionHost } from './subscription.js';
import { CLIENT_TIMEOUT, Transport, type ClientTransport, type TransportName } from './transport.js';
import { PollTransport, SseTransport, type HttpTransportInit } from './http-transport.js';
import { WebSocketProbe } from './websocket-probe.js';
import { buildHttpUrl, buildUrl } from './url.js';

/** A direct message (`send`) received from another user. */
export interface DirectMessage {
  /** The sending user, or null for an anonymous connection. */
  from: string | null;
  data: unknown;
}

/** Events of a {@link Client}. */
export interface ClientEvents {
  /** Every connection state change, with the close code, reason and reconnect delay when known. */
  state: StateChange;
  /** The server's `welcome` frame of each new connection (connection id, worker id, user). */
  welcome: WelcomeFrame;
  /** A direct message to this user. */
  direct: DirectMessage;
  /**
   * Errors not tied to a request: `error` frames without an id (e.g. a refused binary frame), an
   * `UnauthorizedError` when a 4001 stops the client, a `getToken` failure.
   */
  error: HeraldError;
}

/** A request frame before its id is assigned (distributes Omit over the union). */
type Outgoing = Exclude<ClientFrame, { type: 'auth' | 'ping' }> extends infer F ? (F extends unknown ? Omit<F, 'id'> : never) : never;

const isBinary = (data: unknown): data is ArrayBuffer | ArrayBufferView =>
  data instanceof ArrayBuffer || ArrayBuffer.isView(data);

const toBytes = (data: ArrayBuffer | ArrayBufferView): Uint8Array =>
  data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/**
 * Reconnecting Herald client for browsers and Node.
 *
 * ```ts
 * const client = new Client('ws://localhost:8080/ws', { WebSocket }); // WebSocket from 'ws' in Node
 * client.subscribe('room:1', { onMessage: (m) => console.log(m.data) });
 * client.connect();
 * await client.publish('room:1', { text: 'hi' });
 * ```
 *
 * Requests made while (re)connecting wait in a bounded offline queue; subscriptions survive
 * reconnects and resume from their last history position.
 */
export class Client extends Emitter<ClientEvents> {
  readonly #url: string;
  readonly #options: ResolvedOptions;
  #state: State = State.Disconnected;
  /** Generation of the current attempt; every callback checks it (STYLE: old transports are ignored). */
  #generation = 0;
  #transport: ClientTransport | undefined;
  /** Index in `transports` of the transport attempts use now. */
  #transportIndex = 0;
  /** Attempts in a row on the current transport that failed before their `welcome`. */
  #failures = 0;
  /**
   * Index of the most preferred transport that got a `welcome` in this client's life, -1 for none:
   * proof that the network lets it through, so a later failure of it is an outage, not a block.
   */
  #worked = -1;
  #probe: WebSocketProbe | undefined;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  #welcome: WelcomeFrame | undefined;
  #token: string | undefined;
  #attempt = 0;
  #nextId = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #pending = new PendingRequests();
  readonly #queue: OfflineQueue;
  readonly #subs = new Map<string, Subscription>();
  readonly #watchdog: PingWatchdog;
  readonly #host: SubscriptionHost;

  /**
   * @param url `ws://host:port/ws` (or `wss:`, `http(s):`, or a path like `/ws` in a browser).
   * @param options see {@link ClientOptions}; `WebSocket` is required in Node 20.
   */
  constructor(url: string, options: ClientOptions = {}) {
    super();
    this.#options = resolveOptions(options);
    buildUrl(url, {}); // validate early: a bad URL is a constructor error, not a reconnect loop
    this.#url = url;
    this.#token = options.token;
    this.#queue = new OfflineQueue(this.#options.maxQueue);
    this.#watchdog = new PingWatchdog(
      this.#options.pingInterval,
      this.#options.pongTimeout,
      () => this.#transport?.send(encodeClientFrame({ type: 'ping' })),
      () => this.#transportLost(this.#generation, CLIENT_TIMEOUT, 'ping timeout'),
    );
    const client = this;
    this.#host = {
      get connected() {
        return client.#state === State.Connected;
      },
      requestSubscribe: (channel, since) => this.#requestSubscribe(channel, since),
      removeSubscription: (sub, tellServer) => this.#removeSubscription(sub, tellServer),
      retryDelay: (attempt) => this.#delay(attempt),
      publish: (channel, data) => this.publish(channel, data),
      presence: (channel) => this.presence(channel),
    };
  }

  /** The current connection state. */
  get state(): State {
    return this.#state;
  }

  /** The `welcome` frame of the current connection (worker id in `node`), undefined when not connected. */
  get welcome(): WelcomeFrame | undefined {
    return this.#state === State.Connected ? this.#welcome : undefined;
  }

  /** The transport of the current (or next) attempt: `websocket`, `sse` or `long-polling`. */
  get transport(): TransportName {
    return this.#options.transports[this.#transportIndex]!;
  }

  /** Number of requests waiting in the offline queue. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Starts connecting (no-op unless `disconnected`). Use {@link ready} or the `state` event to know when it is connected. */
  connect(): void {
    if (this.#state !== State.Disconnected) return;
    this.#attempt = 0;
    this.#transportIndex = 0;
    this.#failures = 0;
    this.#startAttempt();
  }

  /**
   * Closes the connection with 1000 and stops reconnecting. Queued and in-flight requests reject
   * with a `ClientClosedError`; subscriptions are kept and resume on the next {@link connect}.
   */
  close(): void {
    this.#stop(CloseCode.Normal, 'client closed', true);
  }

  /**
   * Resolves with the `welcome` frame once connected (at once when already connected).
   * Rejects when the client becomes `disconnected` first, or after `timeout` ms.
   * @param timeout @default 10000
   */
  ready(timeout = 10000): Promise<WelcomeFrame> {
    if (this.#state === State.Connected && this.#welcome) return Promise.resolve(this.#welcome);
    if (this.#state === State.Disconnected) return Promise.reject(new ClientClosedError('call connect() first'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new TimeoutError(`not connected within ${timeout} ms`));
      }, timeout);
      const off = this.on('state', (change) => {
        if (change.newState === State.Connected) {
          clearTimeout(timer);
          off();
          resolve(this.#welcome!);
        } else if (change.newState === State.Disconnected) {
          clearTimeout(timer);
          off();
          reject(new ClientClosedError(`disconnected (${change.code ?? '-'} ${change.reason ?? ''})`.trim()));
        }
      });
    });
  }

  /**
   * Subscribes to `channel` and returns its {@link Subscription} at once; it subscribes when
   * connected and resubscribes after every reconnect. Throws a `HeraldError` with code
   * `bad_request` for an invalid name, `already_subscribed` when the channel already has one.
   */
  subscribe(channel: string, handlers: SubscribeHandlers = {}): Subscription {
    if (!isValidChannel(channel)) throw new HeraldError('bad_request', `invalid channel name: ${String(channel).slice(0, 40)}`);
    if (this.#subs.has(channel)) throw new HeraldError('already_subscribed', `already subscribed to ${channel}`);
    const sub = new Subscription(channel, this.#host, handlers);
    this.#subs.set(channel, sub);
    sub._start();
    return sub;
  }

  /** The subscription of `channel`, if any. */
  getSubscription(channel: string): Subscription | undefined {
    return this.#subs.get(channel);
  }

  /** Every current subscription. */
  subscriptions(): Subscription[] {
    return [...this.#subs.values()];
  }

  /**
   * Publishes `data` to `channel`. A JSON value resolves with the ack (`offset`/`epoch` when the
   * channel keeps history); an `ArrayBuffer` or typed array is sent as a binary frame, which has
   * no ack in the protocol, so it resolves with `{}` once handed to the socket (a refusal arrives
   * as an `error` event). Queued while reconnecting; rejects with `TimeoutError`, `ServerError`,
   * `QueueFullError`, `ConnectionClosedError` or `ClientClosedError`.
   */
  publish(channel: string, data: unknown): Promise<PublishResult> {
    if (!isValidChannel(channel)) {
      return Promise.reject(new HeraldError('bad_request', `invalid channel name: ${String(channel).slice(0, 40)}`));
    }
    if (isBinary(data)) {
      return this.#enqueue(encodeBinaryFrame(channel, toBytes(data)), undefined).then(() => ({}));
    }
    return this.#request({ type: 'publish', channel, data }).then((ack) => {
      const result: PublishResult = {};
      if (ack?.offset !== undefined) result.offset = ack.offset;
      if (ack?.epoch !== undefined) result.epoch = ack.epoch;
      return result;
    });
  }

  /** Sends `data` to every connection of `user`, on any worker. Resolves with the server's ack. */
  send(user: string, data: unknown): Promise<void> {
    return this.#request({ type: 'send', user, data }).then(() => undefined);
  }

  /** Members of `channel`, cluster-wide: `[{ user, conn }]`. */
  presence(channel: string): Promise<PresenceMember[]> {
    if (!isValidChannel(channel)) {
      return Promise.reject(new HeraldError('bad_request', `invalid channel name: ${String(channel).slice(0, 40)}`));
    }
    return this.#request({ type: 'presence', channel }).then((ack) => ack?.members ?? []);
  }

  // ---- requests ----------------------------------------------------------------------------

  #request(frame: Outgoing): Promise<AckFrame | undefined> {
    if ('data' in frame && frame.data === undefined) {
      return Promise.reject(new HeraldError('bad_request', '"data" must be a JSON value, not undefined'));
    }
    const id = ++this.#nextId;
    let text: string;
    try {
      text = encodeClientFrame({ ...frame, id } as ClientFrame);
    } catch (error) {
      // JSON.stringify throws on BigInt and cycles: a bad argument, reported like the server would.
      return Promise.reject(new HeraldError('bad_request', `data is not serialisable as JSON: ${(error as Error).message}`));
    }
    return this.#enqueue(text, id);
  }

  /** Sends now when connected, else queues; the timeout runs from here. */
  #enqueue(data: string | Uint8Array, id: number | undefined): Promise<AckFrame | undefined> {
    return new Promise((resolve, reject) => {
      if (this.#state === State.Disconnected) return reject(new ClientClosedError());
      const op: Operation = { id, data, resolve, reject };
      op.timer = setTimeout(() => {
        this.#queue.remove(op);
        if (id !== undefined) this.#pending.delete(id);
        reject(new TimeoutError(`no answer within ${this.#options.requestTimeout} ms`));
      }, this.#options.requestTimeout);
      if (this.#state === State.Connected) return this.#transmit(op);
      if (!this.#queue.push(op)) {
        clearTimeout(op.timer);
        reject(new QueueFullError(this.#queue.limit));
      }
    });
  }

  #transmit(op: Operation): void {
    if (op.id !== undefined) this.#pending.add(op as Operation & { id: number });
    const sent = this.#transport?.send(op.data) ?? false;
    if (op.id === undefined) {
      clearTimeout(op.timer);
      if (sent) op.resolve(undefined);
      else op.reject(new ConnectionClosedError('socket not open'));
    }
  }

  #requestSubscribe(channel: string, since: StreamPosition | undefined): Promise<AckFrame> {
    return new Promise((resolve, reject) => {
      if (this.#state !== State.Connected) return reject(new ClientClosedError('not connected'));
      const id = ++this.#nextId;
      const frame: ClientFrame = since ? { type: 'subscribe', channel, since, id } : { type: 'subscribe', channel, id };
      const op: Operation = { id, data: encodeClientFrame(frame), resolve: (ack) => resolve(ack!), reject };
      op.timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new TimeoutError(`subscribe to ${channel} not acknowledged within ${this.#options.requestTimeout} ms`));
      }, this.#options.requestTimeout);
      this.#transmit(op);
    });
  }

  #removeSubscription(sub: Subscription, tellServer: boolean): void {
    if (this.#subs.get(sub.channel) !== sub) return;
    this.#subs.delete(sub.channel);
    if (!tellServer || this.#state !== State.Connected) return;
    // The ack (or a not_found error if the server never had it) does not matter to anyone.
    this.#request({ type: 'unsubscribe', channel: sub.channel }).catch(() => {});
  }

  // ---- connection lifecycle --------------------------------------------------------------

  #delay(attempt: number): number {
    return backoff(attempt, this.#options.minReconnectDelay, this.#options.maxReconnectDelay, this.#options.random);
  }

  #startAttempt(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const generation = ++this.#generation;
    this.#setState(State.Connecting);
    this.#connectTimer = setTimeout(
      () => this.#transportLost(generation, CLIENT_TIMEOUT, 'connect timeout'),
      this.#options.connectTimeout,
    );
    if (this.#token === undefined && this.#options.getToken) {
      this.#fetchToken(generation);
    } else {
      this.#open(generation);
    }
  }

  #fetchToken(generation: number): void {
    let result: Promise<string>;
    try {
      result = Promise.resolve(this.#options.getToken!());
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (token) => {
        if (generation !== this.#generation) return;
        if (typeof token !== 'string' || token === '') {
          this.emit('error', new UnauthorizedError('getToken returned no token'));
          return this.#stop(CloseCode.Unauthorized, 'no token');
        }
        this.#token = token;
        this.#open(generation);
      },
      (error: unknown) => {
        if (generation !== this.#generation) return;
        const message = error instanceof Error ? error.message : String(error);
        this.emit('error', new UnauthorizedError(`getToken failed: ${message}`));
        this.#stop(CloseCode.Unauthorized, 'getToken failed');
      },
    );
  }

  #open(generation: number): void {
    const handlers = {
      open: () => this.#onOpen(generation),
      text: (text: string) => this.#onText(generation, text),
      binary: (bytes: Uint8Array) => this.#onBinary(generation, bytes),
      close: (code: number, reason: string) => this.#transportLost(generation, code, reason),
    };
    try {
      const name = this.transport;
      if (name === 'websocket') {
        const { url, protocols } = this.#webSocketTarget();
        this.#transport = new Transport(generation, this.#options.WebSocket!, url, protocols, handlers);
      } else {
        const init = this.#httpInit(name === 'sse' ? 'sse' : 'poll');
        this.#transport = name === 'sse' ? new SseTransport(generation, init, handlers) : new PollTransport(generation, init, handlers);
      }
    } catch (error) {
      // The constructor throws synchronously on e.g. an invalid subprotocol; count it as a failed attempt.
      const message = error instanceof Error ? error.message : String(error);
      queueMicrotask(() => this.#transportLost(generation, 1006, message));
    }
  }

  /** URL and subprotocols of a WebSocket attempt (or probe). */
  #webSocketTarget(): { url: string; protocols?: string[] } {
    const { tokenTransport, params } = this.#options;
    const token = this.#token;
    const url = buildUrl(this.#url, params, token !== undefined && tokenTransport === 'query' ? token : undefined);
    if (token !== undefined && tokenTransport === 'protocol') return { url, protocols: [HERALD_PROTOCOL, TOKEN_PROTOCOL_PREFIX + token] };
    return { url };
  }

  /**
   * URLs and headers of an HTTP fallback attempt. The token goes as configured, except that
   * `protocol` (a WebSocket-only place) becomes an `Authorization` header for `fetch` and
   * `?token=` for an EventSource, which cannot send headers.
   */
  #httpInit(endpoint: 'sse' | 'poll'): HttpTransportInit {
    const { tokenTransport, params, fetch, EventSource } = this.#options;
    const token = this.#token;
    const eventSource = endpoint === 'sse' ? EventSource : undefined;
    const inQuery = token !== undefined && (tokenTransport === 'query' || (tokenTransport === 'protocol' && eventSource !== undefined));
    const headers: Record<string, string> = token !== undefined && tokenTransport === 'protocol' && !inQuery ? { authorization: `Bearer ${token}` } : {};
    return {
      url: buildHttpUrl(this.#url, endpoint, params, inQuery ? token : undefined),
      emitUrl: buildHttpUrl(this.#url, 'emit', params),
      headers,
      fetch: fetch!,
      EventSource: eventSource,
    };
  }

  #onOpen(generation: number): void {
    if (generation !== this.#generation) return;
    if (this.#token !== undefined && this.#options.tokenTransport === 'frame') {
      this.#transport?.send(encodeClientFrame({ type: 'auth', token: this.#token }));
    }
  }

  #onText(generation: number, text: string): void {
    if (generation !== this.#generation) return;
    this.#watchdog.seen();
    const frame = decodeServerFrame(text);
    if (!frame) return; // Unknown frames are ignored: a newer server may send types this client does not know.
    this.#handle(frame);
  }

  #onBinary(generation: number, bytes: Uint8Array): void {
    if (generation !== this.#generation) return;
    this.#watchdog.seen();
    const decoded = decodeBinaryFrame(bytes);
    if (!decoded.ok) return;
    this.#subs.get(decoded.frame.channel)?._binary(decoded.frame.payload);
  }

  #handle(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        return this.#onWelcome(frame);
      case 'message':
        return this.#subs.get(frame.channel)?._message(frame);
      case 'join':
      case 'leave':
        return this.#subs.get(frame.channel)?._presence(frame);
      case 'direct':
        return this.emit('direct', { from: frame.from ?? null, data: frame.data });
      case 'ack':
        this.#pending.resolve(frame);
        return;
      case 'error': {
        const error = new ServerError(frame.code, frame.message, frame.id);
        if (frame.id !== undefined && this.#pending.reject(frame.id, error)) return;
        return this.emit('error', error);
      }
      case 'pong':
        return;
      case 'lost':
        return this.#subs.get(frame.channel)?._lost(frame);
    }
  }

  #onWelcome(frame: WelcomeFrame): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#welcome = frame;
    this.#attempt = 0;
    this.#failures = 0;
    if (this.#worked < 0 || this.#transportIndex < this.#worked) this.#worked = this.#transportIndex;
    this.#setState(State.Connected);
    if (this.#state !== State.Connected) return; // a state listener closed the client
    this.#watchdog.start();
    this.#scheduleProbe();
    this.emit('welcome', frame);
    // Subscriptions first, so that queued publishes to those channels are seen by this connection too.
    for (const sub of this.#subs.values()) sub._connected();
    for (const op of this.#queue.drain()) this.#transmit(op);
  }

  /** Every end of a transport comes here; decides between reconnecting and stopping. */
  #transportLost(generation: number, code: number, reason: string): void {
    if (generation !== this.#generation || this.#state === State.Disconnected) return;
    if (this.#state === State.Connecting) this.#afterFailedAttempt();
    this.#teardown(code, reason);
    const advice = reconnectAdvice(code);
    if (advice === 'stop') return this.#stop(code, reason);
    if (advice === 'new-token') {
      this.#token = undefined;
      if (!this.#options.getToken) {
        this.emit('error', new UnauthorizedError(`closed with 4001 (${reason || 'unauthorized'}) and no getToken option`));
        return this.#stop(code, reason);
      }
    }
    let delay = this.#delay(this.#attempt);
    if (advice === 'reconnect-later') delay = Math.max(delay, this.#options.rateLimitedDelay);
    const attempt = this.#attempt++;
    this.#setState(State.Reconnecting, { code, reason, delay, attempt });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === State.Reconnecting) this.#startAttempt();
    }, delay);
  }

  /**
   * Picks the transport of the next attempt after one that never got its `welcome`: the next one
   * after `fallbackAfter` failures in a row, wrapping round from the last to the first (in an
   * outage every transport fails; none is given up for good). A fallback that fails too while a
   * more preferred transport worked before means an outage, not a blocked transport: back to
   * that one at once, so the client does not come out of an outage on its last fallback.
   */
  #afterFailedAttempt(): void {
    if (this.#worked >= 0 && this.#worked < this.#transportIndex) {
      this.#transportIndex = this.#worked;
      this.#failures = 0;
      return;
    }
    const count = this.#options.transports.length;
    if (++this.#failures < this.#options.fallbackAfter || count === 1) return;
    this.#transportIndex = (this.#transportIndex + 1) % count;
    this.#failures = 0;
  }

  /**
   * Drops the current transport and fails what was in flight on it. `graceful` sends a close
   * frame (our own `close()`); otherwise the socket is abandoned, since it is gone or dead.
   */
  #teardown(code: number, reason: string, graceful = false): void {
    this.#generation++;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#watchdog.stop();
    this.#stopProbe();
    const transport = this.#transport;
    this.#transport = undefined;
    if (transport) {
      if (graceful) transport.close(code, reason);
      else transport.abandon();
    }
    this.#pending.rejectAll(() => new ConnectionClosedError(`connection closed (${code}${reason ? ` ${reason}` : ''}) before the answer`, code));
    for (const sub of this.#subs.values()) sub._transportLost('transport closed');
  }

  /** The one way to `disconnected`: no reconnect; queued requests fail. */
  #stop(code: number, reason: string, graceful = false): void {
    if (this.#state === State.Disconnected) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#teardown(code, reason, graceful);
    for (const op of this.#queue.drain()) {
      clearTimeout(op.timer);
      op.reject(new ClientClosedError(`client stopped (${code} ${reason})`));
    }
    this.#setState(State.Disconnected, { code, reason });
  }

  /** The one place the state changes; emits `state` with `{oldState, newState}`, the transport and the details. */
  #setState(newState: State, details: Omit<StateChange, 'oldState' | 'newState' | 'transport'> = {}): boolean {
    const oldState = this.#state;
    if (oldState === newState) return false;
    this.#state = newState;
    this.emit('state', { oldState, newState, transport: this.transport, ...details });
    return true;
  }

  // ---- probing back up to WebSocket ------------------------------------------------------

  /**
   * On a fallback, schedules a WebSocket probe (when `websocket` is a usable transport ahead of
   * this one) after `probeInterval`. Not sooner, even after an outage that left the client on a
   * fallback: every probe that gets through is one more session on a worker, and right after a
   * balancer restart a probe per client that came back on a fallback would add a second wave to
   * the reconnects the drain paces.
   */
  #scheduleProbe(): void {
    const ws = this.#options.transports.indexOf('websocket');
    if (this.#options.probeInterval <= 0 || ws < 0 || ws >= this.#transportIndex) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#state !== State.Connected) return;
      const { url, protocols } = this.#webSocketTarget();
      const generation = this.#generation;
      this.#probe = new WebSocketProbe(this.#options.WebSocket!, url, protocols, this.#options.connectTimeout, (ok) => {
        this.#probe = undefined;
        if (generation !== this.#generation || this.#state !== State.Connected) return;
        if (ok && this.#pending.size === 0) return this.#upgrade(ws);
        // A probe that failed while the fallback works: WebSocket is blocked from here (a proxy,
        // a new network), not down, so a later outage of the fallback stays on the fallback.
        if (!ok && this.#worked === ws) this.#worked = this.#transportIndex;
        // A WebSocket that opened while requests were in flight is tried again at the next interval.
        this.#scheduleProbe();
      });
    }, this.#options.probeInterval);
  }

  #stopProbe(): void {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#probe?.cancel();
    this.#probe = undefined;
  }

  /**
   * A WebSocket works again: ends the fallback session and reconnects over WebSocket at once.
   * Only done with no request in flight, so none is failed by the switch; subscriptions resume
   * from their positions, so history channels lose nothing.
   */
  #upgrade(index: number): void {
    this.#teardown(CloseCode.Normal, 'upgrading to websocket', true);
    this.#transportIndex = index;
    this.#failures = 0;
    this.#startAttempt();
  }
}
