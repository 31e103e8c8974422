import type { PresenceMember, StreamPosition } from '@herald/protocol';
import type { History } from './history.js';
import type { ForwardCommand, ForwardReply } from './http-forward.js';

/**
 * A message published to a channel: a JSON value or a binary payload. A JSON value travels as
 * its JSON text (`json`) from the publishing session to every subscriber's frame, so no node
 * parses or re-encodes it (docs/cluster.md, "Envelope"); `data` is the parsed value where a
 * producer has only that (`POST /api/publish`).
 */
export interface ChannelMessage {
  kind: 'message';
  channel: string;
  /** The JSON value, for a text publication without `json`. */
  data?: unknown;
  /** The JSON text (UTF-8) of the value, for a text publication; wins over `data`. */
  json?: Uint8Array;
  /** The payload, for a binary publication. */
  bytes?: Uint8Array;
  /** User id of the publisher; null for anonymous connections and the HTTP API. */
  from: string | null;
  /** Position in the channel's history, when the channel keeps history. */
  offset?: number;
  epoch?: string;
}

/** A presence change on a channel. */
export interface PresenceEvent extends PresenceMember {
  kind: 'join' | 'leave';
  channel: string;
}

/** Anything published to a channel's subscribers. */
export type ChannelEvent = ChannelMessage | PresenceEvent;

/** A direct message to every connection of a user. */
export interface DirectMessage {
  user: string;
  from: string | null;
  data: unknown;
}

/**
 * A command every node carries out:
 * - `disconnect` (`POST /api/disconnect`): close every connection of `user`;
 * - `drain-balancer` (sent by herald-balancer on SIGTERM): close every connection that came
 *   through balancer `balancer` with 1001, in paced batches spread over `spreadMs` (default: half
 *   the worker's drain budget; never more than the whole budget);
 * - `http-emit` / `http-poll` / `http-reply` (node-addressed only): a request for an HTTP fallback
 *   session forwarded to its owner, and the answer (`http-forward.ts`).
 */
export type AdminCommand = { kind: 'disconnect'; user: string } | { kind: 'drain-balancer'; balancer: string; spreadMs?: number } | ForwardCommand | ForwardReply;

/** History settings for one publish: keep the last `size` messages for `ttlMs`. */
export interface HistoryPolicy {
  size: number;
  ttlMs: number;
}

/** Callbacks through which a broker hands events to the local node. */
export interface BrokerHandler {
  /** A channel event for a channel this node subscribed to. */
  onChannelEvent(event: ChannelEvent): void;
  /** A direct message for a user this node subscribed to. */
  onDirect(message: DirectMessage): void;
  /** An admin command for every node. */
  onCommand(command: AdminCommand): void;
  /** The broker lost or regained its connection to the cluster. */
  onAvailability(available: boolean): void;
  /**
   * Events of `channel` may have been missed on this node and cannot be filled in (its
   * subscription was interrupted and the channel keeps no history, or the history epoch changed
   * or was trimmed). `position`, for a history channel, is where delivery goes on from: the
   * messages handed over next follow it. Called in order with the channel's events.
   */
  onLost?(channel: string, position?: StreamPosition): void;
}

/**
 * Moves channel events, direct messages and admin commands between nodes, and keeps channel
 * history: appending and publishing must be one atomic step, so history is part of the broker
 * (as in centrifuge), and its read side is the {@link History} the broker implements. The node's
 * {@link Hub} knows local connections; the broker only knows which channels and users this
 * node is interested in.
 *
 * Rules every implementation keeps:
 * - `publish` delivers the event to every subscribed node, this one included, exactly once.
 * - For a message with a history policy, appending to history and publishing are one atomic
 *   step, and every node receives a channel's history messages in offset order.
 * - Continuity: a node never skips a history message silently. After an interruption of its
 *   subscription it hands over the missed messages in offset order before newer ones, or calls
 *   `onLost` (also for channels without history) when it cannot.
 * - A failure to reach other nodes rejects with `BrokerUnavailableError`, never silently.
 * - No method throws synchronously, and no callback of the handler is called from inside one.
 */
export interface Broker extends History {
  /** Connects and starts handing events to `handler`. */
  start(handler: BrokerHandler): Promise<void>;
  /** True while events can cross the cluster. */
  readonly available: boolean;
  /** Receive events of `channel` on this node. Resolves once delivery is guaranteed. */
  subscribe(channel: string): Promise<void>;
  /** Stop receiving events of `channel`. */
  unsubscribe(channel: string): Promise<void>;
  /** Receive direct messages for `user` on this node. */
  subscribeUser(user: string): Promise<void>;
  /** Stop receiving direct messages for `user`. */
  unsubscribeUser(user: string): Promise<void>;
  /**
   * Publishes a channel event. With a `history` policy (messages only), appends it to the
   * channel's history atomically with the publish and resolves with its position.
   */
  publish(event: ChannelEvent, history?: HistoryPolicy): Promise<StreamPosition | undefined>;
  /** Sends a direct message to every node with a connection of `message.user`. */
  sendDirect(message: DirectMessage): Promise<void>;
  /** Sends a command to every node, this one included. */
  command(command: AdminCommand): Promise<void>;
  /** Disconnects; pending operations reject. */
  close(): Promise<void>;
}
