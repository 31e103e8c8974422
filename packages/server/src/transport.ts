import type { WireFrame } from './ws-fast-write.js';

/**
 * What a session needs of the connection it runs on. `/ws` implements it over a ws socket
 * ({@link WsTransport}); the HTTP fallback (SSE, long-polling: SPEC §9) implements it over its
 * streams, so both share every rule of the session: auth and its deadline, rate limits, message
 * size, the send-buffer bound, order and answers, recovery, drain.
 */
export interface Transport {
  /** Whether frames can still be sent (false once closing or closed). */
  readonly open: boolean;
  /** Bytes accepted by {@link send} and not yet handed to the network: the slow-consumer measure. */
  readonly bufferedAmount: number;
  /**
   * Sends one pre-encoded frame: JSON text (`binary` false) or a binary channel frame. `wire`,
   * when given, is the same frame already framed for a WebSocket (built once per broadcast, see
   * `ws-fast-write.ts`); a transport that can write it as is does, others ignore it.
   */
  send(data: Buffer | Uint8Array | string, binary: boolean, wire?: WireFrame): void;
  /**
   * Closes with `code` (a {@link CloseCode}) and a reason of at most 123 bytes; a peer that does not
   * complete the close in time is cut off. Idempotent.
   */
  close(code: number, reason: string): void;
  /** Starts delivering the transport's events to `events`; called once, by the session. */
  bind(events: TransportEvents): void;
}

/**
 * The events a transport delivers to its session. A plain object of methods rather than an
 * emitter: the session implements them itself, so a connection costs no listener closures.
 */
export interface TransportEvents {
  /** One complete client frame: UTF-8 JSON text, or a binary channel frame. */
  onFrame(data: Buffer, binary: boolean): void;
  /** A transport-level keep-alive (a WebSocket ping): charged to the frame rate, not answered by the session. */
  onPing(): void;
  /** A transport error; a `close` follows. */
  onError(err: Error): void;
  /** The connection is gone (fires once). */
  onClose(): void;
}
