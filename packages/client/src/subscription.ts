import {
  ErrorCode,
  type AckFrame,
  type JoinFrame,
  type LeaveFrame,
  type LostFrame,
  type MessageFrame,
  type PresenceMember,
  type StreamPosition,
} from '@herald/protocol';
import { Emitter } from './emitter.js';
import { HeraldError } from './errors/herald-error.js';
import { ServerError } from './errors/server-error.js';
import { TimeoutError } from './errors/timeout-error.js';
import { SubscriptionState, type SubscriptionStateChange } from './state.js';

/** A message received on a channel. */
export interface ChannelMessage {
  channel: string;
  /** The published JSON value, or the payload bytes when `binary` is true. */
  data: unknown;
  /** True for a binary frame (then `data` is a `Uint8Array`, and there is no offset). */
  binary: boolean;
  /** Position in the channel's history, when the channel keeps history. */
  offset?: number;
  epoch?: string;
  /** The publishing user, when the server knows it. */
  from?: string | null;
}

/** A `join` or `leave` on a channel with presence. */
export interface PresenceEvent {
  channel: string;
  user: string | null;
  conn: string;
}

/** Emitted each time the server acknowledges a (re)subscription. */
export interface SubscribedEvent {
  channel: string;
  /** True when the subscribe frame carried `since` (a resubscription after a lost transport). */
  recovering: boolean;
  /**
   * True when the server delivered every message missed since `since`. False after a
   * resubscription means messages may be lost (history trimmed or expired, or the epoch
   * changed, e.g. a restarted single worker): the app should reload its state.
   */
  recovered: boolean;
  /** Latest offset and epoch of the channel, when it keeps history. */
  offset?: number;
  epoch?: string;
}

/**
 * Emitted when the server reports that messages of the channel may have been missed and cannot
 * be replayed (`lost` frame: the worker's Redis subscription was interrupted on a channel
 * without history, or the history epoch changed or was trimmed). The app should reload its view
 * of the channel. For a history channel, `offset`/`epoch` is where delivery goes on from: the
 * subscription takes it as its position only after this event was emitted.
 */
export interface LostEvent {
  channel: string;
  /** The position the subscription had before (undefined when none was known). */
  previous?: StreamPosition;
  /** The position delivery goes on from (history channels). */
  offset?: number;
  epoch?: string;
}

/** Events of a {@link Subscription}. */
export interface SubscriptionEvents {
  state: SubscriptionStateChange;
  message: ChannelMessage;
  join: PresenceEvent;
  leave: PresenceEvent;
  subscribed: SubscribedEvent;
  lost: LostEvent;
  /** A refused subscription (then the state is `unsubscribed`) or a failed retry. */
  error: HeraldError;
}

/** Callbacks that can be passed to `client.subscribe(channel, handlers)`. */
export interface SubscribeHandlers {
  onMessage?: (message: ChannelMessage) => void;
  onJoin?: (event: PresenceEvent) => void;
  onLeave?: (event: PresenceEvent) => void;
  onSubscribed?: (event: SubscribedEvent) => void;
  onLost?: (event: LostEvent) => void;
  onError?: (error: HeraldError) => void;
  onState?: (change: SubscriptionStateChange) => void;
}

/** Result of a JSON publish: the message's position when the channel keeps history. */
export interface PublishResult {
  offset?: number;
  epoch?: string;
}

/** What a subscription needs from its client (kept narrow so the two files do not depend on each other). */
export interface SubscriptionHost {
  /** True while the client is `connected`. */
  readonly connected: boolean;
  /** Sends a subscribe frame with an id; resolves with its ack. */
  requestSubscribe(channel: string, since: StreamPosition | undefined): Promise<AckFrame>;
  /** Removes the subscription from the client; `tellServer` sends an `unsubscribe` frame. */
  removeSubscription(sub: Subscription, tellServer: boolean): void;
  /** Reconnect delay for the n-th failed try, reused for subscribe retries. */
  retryDelay(attempt: number): number;
  publish(channel: string, data: unknown): Promise<PublishResult>;
  presence(channel: string): Promise<PresenceMember[]>;
}

/** Server error codes after which trying again later may succeed. */
const RETRYABLE: ReadonlySet<string> = new Set([ErrorCode.Unavailable, ErrorCode.Internal, ErrorCode.RateLimited]);

/**
 * One channel subscription, created by `client.subscribe()`. It keeps its own state
 * ({@link SubscriptionState}) and its position in the channel's history, and the client
 * resubscribes it with `since` = that position after every reconnect, so a channel with history
 * loses nothing; messages at or before the position are dropped as duplicates.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  #state: SubscriptionState = SubscriptionState.Unsubscribed;
  #position: StreamPosition | undefined;
  /** Increases with every subscribe try, so the answer of an outdated try is ignored. */
  #try = 0;
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #last: SubscribedEvent | undefined;

  /** @internal Created by `Client#subscribe`. */
  constructor(
    /** The channel name. */
    readonly channel: string,
    private readonly host: SubscriptionHost,
    handlers: SubscribeHandlers = {},
  ) {
    super();
    if (handlers.onMessage) this.on('message', handlers.onMessage);
    if (handlers.onJoin) this.on('join', handlers.onJoin);
    if (handlers.onLeave) this.on('leave', handlers.onLeave);
    if (handlers.onSubscribed) this.on('subscribed', handlers.onSubscribed);
    if (handlers.onLost) this.on('lost', handlers.onLost);
    if (handlers.onError) this.on('error', handlers.onError);
    if (handlers.onState) this.on('state', handlers.onState);
  }

  /** The current state. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** The last history position seen (offset and epoch), or undefined before any. */
  get position(): StreamPosition | undefined {
    return this.#position && { ...this.#position };
  }

  /**
   * Resolves once the subscription is `subscribed` (at once when it already is), with the last
   * {@link SubscribedEvent}. Rejects when it becomes `unsubscribed` first, or after `timeout` ms.
   * @param timeout @default 10000
   */
  ready(timeout = 10000): Promise<SubscribedEvent> {
    if (this.#state === SubscriptionState.Subscribed && this.#last) return Promise.resolve(this.#last);
    if (this.#state === SubscriptionState.Unsubscribed) {
      return Promise.reject(new HeraldError('unsubscribed', `not subscribed to ${this.channel}`));
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        offSub();
        offState();
      };
      const timer = setTimeout(() => {
        done();
        reject(new TimeoutError(`subscribe to ${this.channel} not acknowledged within ${timeout} ms`));
      }, timeout);
      const offSub = this.on('subscribed', (event) => {
        done();
        resolve(event);
      });
      const offState = this.on('state', (change) => {
        if (change.newState !== SubscriptionState.Unsubscribed) return;
        done();
        reject(new HeraldError('unsubscribed', change.reason ?? `unsubscribed from ${this.channel}`));
      });
    });
  }

  /** Publishes `data` (JSON value, or `ArrayBuffer`/`Uint8Array` for a binary frame) to this channel. */
  publish(data: unknown): Promise<PublishResult> {
    return this.host.publish(this.channel, data);
  }

  /** Members of this channel, cluster-wide. */
  presence(): Promise<PresenceMember[]> {
    return this.host.presence(this.channel);
  }

  /** Leaves the channel: state `unsubscribed`, no more events, the client forgets it. */
  unsubscribe(): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    this.#stop('unsubscribe() called');
    this.host.removeSubscription(this, true);
  }

  /** @internal The client wants this subscription active: subscribe now if connected. */
  _start(): void {
    if (this.#state === SubscriptionState.Unsubscribed) this.#setState(SubscriptionState.Subscribing);
    if (this.host.connected) this.#send();
  }

  /** @internal A new transport is connected: (re)subscribe, with `since` when a position is known. */
  _connected(): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    this.#failures = 0;
    this.#send();
  }

  /** @internal The transport closed: wait for the next one. */
  _transportLost(reason: string): void {
    this.#try++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#state === SubscriptionState.Subscribed) this.#setState(SubscriptionState.Subscribing, reason);
  }

  /** @internal A `message` frame for this channel. */
  _message(frame: MessageFrame): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    if (typeof frame.offset === 'number' && typeof frame.epoch === 'string') {
      const pos = this.#position;
      // Already seen: a recovery replay overlapping live delivery. Dropping it is what makes
      // "no duplicates" hold across reconnects.
      if (pos && pos.epoch === frame.epoch && frame.offset <= pos.offset) return;
      this.#position = { offset: frame.offset, epoch: frame.epoch };
    }
    const message: ChannelMessage = { channel: this.channel, data: frame.data, binary: false };
    if (frame.offset !== undefined) message.offset = frame.offset;
    if (frame.epoch !== undefined) message.epoch = frame.epoch;
    if (frame.from !== undefined) message.from = frame.from;
    this.emit('message', message);
  }

  /** @internal A `lost` frame for this channel: tell the app, then take the new position. */
  _lost(frame: LostFrame): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    const event: LostEvent = { channel: this.channel };
    if (this.#position) event.previous = { ...this.#position };
    const next = typeof frame.offset === 'number' && typeof frame.epoch === 'string' ? { offset: frame.offset, epoch: frame.epoch } : undefined;
    if (next) Object.assign(event, next);
    this.emit('lost', event);
    if (next) this.#position = next;
  }

  /** @internal A binary frame for this channel. */
  _binary(payload: Uint8Array): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    this.emit('message', { channel: this.channel, data: payload, binary: true });
  }

  /** @internal A `join` or `leave` frame for this channel. */
  _presence(frame: JoinFrame | LeaveFrame): void {
    if (this.#state === SubscriptionState.Unsubscribed) return;
    this.emit(frame.type, { channel: this.channel, user: frame.user, conn: frame.conn });
  }

  #send(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const attempt = ++this.#try;
    const since = this.#position;
    this.host.requestSubscribe(this.channel, since).then(
      (ack) => {
        if (attempt !== this.#try || this.#state === SubscriptionState.Unsubscribed) return;
        this.#failures = 0;
        if (typeof ack.offset === 'number' && typeof ack.epoch === 'string') {
          const pos = this.#position;
          if (!pos || pos.epoch !== ack.epoch || ack.offset > pos.offset) this.#position = { offset: ack.offset, epoch: ack.epoch };
        }
        const event: SubscribedEvent = { channel: this.channel, recovering: since !== undefined, recovered: ack.recovered === true };
        if (ack.offset !== undefined) event.offset = ack.offset;
        if (ack.epoch !== undefined) event.epoch = ack.epoch;
        this.#last = event;
        this.#setState(SubscriptionState.Subscribed);
        this.emit('subscribed', event);
      },
      (error: Error) => {
        if (attempt !== this.#try || this.#state === SubscriptionState.Unsubscribed) return;
        if (error instanceof ServerError && !RETRYABLE.has(error.code)) {
          // A refusal (forbidden, bad_request, …) will not change by retrying.
          this.#stop(`${error.code}: ${error.message}`);
          this.host.removeSubscription(this, false);
          this.emit('error', error);
          return;
        }
        if (error instanceof ServerError || error instanceof TimeoutError) {
          this.emit('error', error);
          if (!this.host.connected) return;
          const delay = this.host.retryDelay(this.#failures++);
          this.#retryTimer = setTimeout(() => {
            this.#retryTimer = undefined;
            if (this.host.connected && this.#state !== SubscriptionState.Unsubscribed) this.#send();
          }, delay);
        }
        // Any other error means the transport closed; the next `welcome` resubscribes.
      },
    );
  }

  #stop(reason: string): void {
    this.#try++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#setState(SubscriptionState.Unsubscribed, reason);
  }

  /** The one place the state changes; emits `state` with `{oldState, newState}`. */
  #setState(newState: SubscriptionState, reason?: string): boolean {
    const oldState = this.#state;
    if (oldState === newState) return false;
    this.#state = newState;
    this.emit('state', reason === undefined ? { oldState, newState } : { oldState, newState, reason });
    return true;
  }
}
