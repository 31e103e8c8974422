import type { TransportName } from './transport.js';

/**
 * Connection states of a {@link Client}. Transitions (every one goes through
 * `Client#setState`, which emits `state` with `{oldState, newState}`):
 *
 * ```
 * disconnected --connect()--> connecting --welcome--> connected
 * connecting / connected --transport lost--> reconnecting --timer--> connecting
 * any --close(), 1000, 1008, 4001 without getToken--> disconnected
 * ```
 */
export const State = {
  /** Not connected and not trying to: initial state, after `close()`, or after a close code that forbids reconnecting. */
  Disconnected: 'disconnected',
  /** A transport is being opened (or waits for its token / `welcome` frame). */
  Connecting: 'connecting',
  /** The `welcome` frame arrived: requests are sent at once. */
  Connected: 'connected',
  /** The transport was lost; a new attempt starts after a backoff delay (`StateChange.delay`). */
  Reconnecting: 'reconnecting',
} as const;
/** A connection state from {@link State}. */
export type State = (typeof State)[keyof typeof State];

/**
 * States of a {@link Subscription}:
 *
 * ```
 * unsubscribed --subscribe()--> subscribing --ack--> subscribed
 * subscribed --transport lost--> subscribing (resubscribes with `since` on reconnect)
 * any --unsubscribe(), or a refusal (forbidden, bad_request)--> unsubscribed
 * ```
 */
export const SubscriptionState = {
  /** Not subscribed and not trying to. */
  Unsubscribed: 'unsubscribed',
  /** Waiting for the connection or for the server's ack. */
  Subscribing: 'subscribing',
  /** The server acknowledged the subscription; messages flow. */
  Subscribed: 'subscribed',
} as const;
/** A subscription state from {@link SubscriptionState}. */
export type SubscriptionState = (typeof SubscriptionState)[keyof typeof SubscriptionState];

/** Payload of the client's `state` event. */
export interface StateChange {
  oldState: State;
  newState: State;
  /** The transport of the attempt this change belongs to (`websocket`, `sse` or `long-polling`). */
  transport: TransportName;
  /** The close code that caused the change, when a transport closed (1006 when the link died without one). */
  code?: number;
  /** Why: the close reason, or a short text for client-side causes (`ping timeout`, `connect timeout`). */
  reason?: string;
  /** For `reconnecting`: ms until the next attempt. */
  delay?: number;
  /** For `reconnecting`: how many attempts failed in a row (0 for the first retry). */
  attempt?: number;
}

/** Payload of a subscription's `state` event. */
export interface SubscriptionStateChange {
  oldState: SubscriptionState;
  newState: SubscriptionState;
  /** Why, when known (e.g. an error message or `transport closed`). */
  reason?: string;
}
