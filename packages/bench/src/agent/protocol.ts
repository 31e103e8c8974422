import type { HistogramData } from '../histogram.js';

/** How a load agent talks to a target. */
export type Proto =
  /** Herald `/ws` channel protocol (JSON subscribe / publish). */
  | 'herald'
  /** The bare ws baseline (`/sub`, `/pub`). */
  | 'ws'
  /** Socket.IO v4 (`join`, `pub`, `m` events). */
  | 'socketio';

/** Echo load: `conns` connections, each keeping `inflight` messages outstanding. */
export interface EchoTask {
  cmd: 'echo';
  /** Connection i uses `urls[i % urls.length]` as is. */
  urls: string[];
  conns: number;
  inflight: number;
  /** Payload bytes. */
  size: number;
  binary: boolean;
  warmupMs: number;
  durationMs: number;
  /** PEM certificate trusted for `wss://` URLs (`proxy --tls`). @default undefined */
  ca?: string;
}

/** Opens (and holds) subscribed connections. */
export interface OpenTask {
  cmd: 'open';
  proto: Proto;
  /** Connection i uses `urls[i % urls.length]`. */
  urls: string[];
  conns: number;
  channel: string;
  /** Connections opened per second (0 = as fast as possible, bounded by `concurrency`). */
  rampPerSec: number;
  /** Handshakes in progress at once. @default 200 */
  concurrency?: number;
  /** Source address of every connection (e.g. `127.0.0.5`); the OS picks when unset. */
  localAddress?: string;
}

/** Publishes at a fixed total rate for a while, spreading messages over `publishers` connections. */
export interface PublishTask {
  cmd: 'publish';
  proto: Proto;
  urls: string[];
  publishers: number;
  channel: string;
  /** Messages per second, all publishers together. */
  rate: number;
  durationMs: number;
  /** Payload bytes. */
  size: number;
}

/** Commands without parameters of their own. */
export interface SimpleTask {
  cmd: 'reset' | 'collect' | 'close';
}

/** Waits until `expected` messages have arrived (or `ms` passed). */
export interface AwaitTask {
  cmd: 'await';
  expectedPerConn: number;
  ms: number;
}

/** Any task an agent runs. */
export type Task = EchoTask | OpenTask | PublishTask | SimpleTask | AwaitTask;

/** Result of an echo task. */
export interface EchoResult {
  sent: number;
  received: number;
  /** Echoes received inside the measuring window. */
  windowReceived: number;
  windowMs: number;
  /** Messages never echoed (sent − received after the drain wait). */
  lost: number;
  errors: number;
  hist: HistogramData;
}

/** Result of an open task. */
export interface OpenResult {
  opened: number;
  failed: number;
  /** First few error messages. */
  errors: string[];
  ms: number;
}

/** Result of `collect`/`await`: what the subscribers of this agent received since `reset`. */
export interface CollectResult {
  conns: number;
  received: number;
  /** Connections that closed while subscribed. */
  dropped: number;
  hist: HistogramData;
}

/** Result of a publish task. */
export interface PublishResult {
  published: number;
  /** How far the publisher fell behind its schedule at the end (messages). */
  behind: number;
  /**
   * Publishing connections the server closed during the run (e.g. a limit it enforces): the
   * messages counted in `published` include the ones sent into them, so a step with closed
   * publishers shows them as lost, and says why.
   */
  closedPublishers: number;
}

/** A request from the parent. */
export interface AgentRequest {
  id: number;
  task: Task;
}

/** An agent's answer. */
export interface AgentReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}
