import type { ErrorCode } from './codes.js';

/** Every `type` a client may send on `/ws`. */
export const ClientType = {
  Auth: 'auth',
  Subscribe: 'subscribe',
  Unsubscribe: 'unsubscribe',
  Publish: 'publish',
  Presence: 'presence',
  Send: 'send',
  Ping: 'ping',
} as const;
export type ClientType = (typeof ClientType)[keyof typeof ClientType];

/** Every `type` the server sends on `/ws`. */
export const ServerType = {
  Welcome: 'welcome',
  Message: 'message',
  Join: 'join',
  Leave: 'leave',
  Direct: 'direct',
  Ack: 'ack',
  Error: 'error',
  Pong: 'pong',
  Lost: 'lost',
} as const;
export type ServerType = (typeof ServerType)[keyof typeof ServerType];

/** A position in a channel's history stream. */
export interface StreamPosition {
  /** Offset of the last message seen (messages are numbered from 1). */
  offset: number;
  /** Epoch of the stream: when it changes, older offsets mean nothing. */
  epoch: string;
}

interface WithId {
  /** When present, the server answers with an `ack` or an `error` carrying this id. */
  id?: number;
}

export interface AuthFrame extends WithId { type: 'auth'; token: string }
export interface SubscribeFrame extends WithId { type: 'subscribe'; channel: string; since?: StreamPosition }
export interface UnsubscribeFrame extends WithId { type: 'unsubscribe'; channel: string }
export interface PublishFrame extends WithId { type: 'publish'; channel: string; data: unknown }
export interface PresenceFrame extends WithId { type: 'presence'; channel: string }
export interface SendFrame extends WithId { type: 'send'; user: string; data: unknown }
export interface PingFrame extends WithId { type: 'ping' }

/** A decoded client → server text frame. */
export type ClientFrame =
  | AuthFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | PresenceFrame
  | SendFrame
  | PingFrame;

/** A member of a channel's presence set. */
export interface PresenceMember {
  /** The user id, or null for an anonymous connection. */
  user: string | null;
  /** The connection id. */
  conn: string;
}

export interface WelcomeFrame {
  type: 'welcome';
  conn: string;
  node: string;
  user: string | null;
  /** Interval of the server's protocol pings, in ms. */
  heartbeat: number;
}
export interface MessageFrame {
  type: 'message';
  channel: string;
  data: unknown;
  offset?: number;
  epoch?: string;
  from?: string | null;
}
export interface JoinFrame { type: 'join'; channel: string; user: string | null; conn: string }
export interface LeaveFrame { type: 'leave'; channel: string; user: string | null; conn: string }
export interface DirectFrame { type: 'direct'; from: string | null; data: unknown }
export interface AckFrame {
  type: 'ack';
  id: number;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  members?: PresenceMember[];
}
export interface ErrorFrame { type: 'error'; id?: number; code: ErrorCode; message: string }
export interface PongFrame { type: 'pong'; id?: number }
/**
 * Messages of `channel` may have been missed and cannot be replayed (the worker's subscription
 * was interrupted on a channel without history, or the history epoch changed or was trimmed).
 * For a history channel, `offset`/`epoch` is the position delivery goes on from: the messages
 * that follow come after it, so a client takes it as its new position (after telling the app).
 */
export interface LostFrame { type: 'lost'; channel: string; offset?: number; epoch?: string }

/** A server → client text frame. */
export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | JoinFrame
  | LeaveFrame
  | DirectFrame
  | AckFrame
  | ErrorFrame
  | PongFrame
  | LostFrame;
