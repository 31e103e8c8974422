import { OPEN, type WebSocketConstructor, type WebSocketLike } from './websocket-like.js';

/** What a {@link Transport} reports. Called only while the transport is attached. */
export interface TransportHandlers {
  open(): void;
  text(text: string): void;
  binary(bytes: Uint8Array): void;
  /** The socket closed (or failed to open). Called at most once. */
  close(code: number, reason: string): void;
}

/** Names of the transports, in the client's `transports` option. */
export type TransportName = 'websocket' | 'sse' | 'long-polling';

/**
 * What the client needs of a transport, whatever carries it: a WebSocket ({@link Transport}) or an
 * HTTP fallback session (`http-transport.ts`). Handlers are called only while it is attached.
 */
export interface ClientTransport {
  readonly name: TransportName;
  /** Generation number given by the client; increases with every attempt. */
  readonly generation: number;
  /** True while frames can be sent. */
  readonly open: boolean;
  /** Sends a text or binary frame; false when not open (the close event follows). */
  send(data: string | Uint8Array): boolean;
  /** Stops reporting events. */
  detach(): void;
  /** Detaches and ends the connection politely (a close frame, or ending the HTTP session). */
  close(code: number, reason: string): void;
  /** Detaches and drops the connection at once (a dead link). */
  abandon(): void;
}

/** Code reported when the socket closed without a close frame (RFC 6455 §7.1.5). */
export const ABNORMAL_CLOSURE = 1006;
/** Code the client reports (never sends) when it drops a socket itself: connect or ping timeout. */
export const CLIENT_TIMEOUT = 4000;

/**
 * One WebSocket and its event wiring. Each transport has a generation number; the client
 * compares it with its current one, and {@link detach} cuts the wiring, so a late `message`
 * or `close` of an old socket can never touch the state of a newer connection.
 */
export class Transport implements ClientTransport {
  readonly name = 'websocket' as const;
  #socket: WebSocketLike;
  #attached = true;
  #lastError = '';

  constructor(
    /** Generation number given by the client; increases with every attempt. */
    readonly generation: number,
    Ctor: WebSocketConstructor,
    url: string,
    protocols: string[] | undefined,
    handlers: TransportHandlers,
  ) {
    this.#socket = protocols ? new Ctor(url, protocols) : new Ctor(url);
    const socket = this.#socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      if (this.#attached) handlers.open();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (!this.#attached) return;
      const data = event.data;
      if (typeof data === 'string') handlers.text(data);
      else if (data instanceof ArrayBuffer) handlers.binary(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) handlers.binary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
    // Both platforms fire `close` after `error`; the error itself carries no code, but `ws`
    // tells why an upgrade failed ("Unexpected server response: 401"), which we keep.
    socket.onerror = (event: { message?: unknown; error?: unknown }) => {
      if (typeof event?.message === 'string') this.#lastError = event.message;
    };
    socket.onclose = (event: { code?: number; reason?: string }) => {
      if (!this.#attached) return;
      this.#attached = false;
      let code = typeof event?.code === 'number' ? event.code : ABNORMAL_CLOSURE;
      let reason = typeof event?.reason === 'string' && event.reason ? event.reason : this.#lastError;
      // A 401 answer to the upgrade is the HTTP form of close code 4001 (SPEC §4): treat it alike.
      if (code === ABNORMAL_CLOSURE && /server response: 401\b/.test(this.#lastError)) {
        code = 4001;
        reason = 'unauthorized (HTTP 401)';
      }
      handlers.close(code, reason);
    };
  }

  /** True while the socket is open. */
  get open(): boolean {
    return this.#socket.readyState === OPEN;
  }

  /** Sends a text or binary frame; a no-op when the socket is not open (the close event follows). */
  send(data: string | Uint8Array): boolean {
    if (!this.open) return false;
    this.#socket.send(data);
    return true;
  }

  /** Stops reporting events; later callbacks of this socket are ignored. */
  detach(): void {
    this.#attached = false;
  }

  /** Detaches and closes with a close frame (used for `close()`). */
  close(code: number, reason: string): void {
    this.detach();
    try {
      this.#socket.close(code, reason);
    } catch {
      // A socket still CONNECTING may refuse close() on some platforms; it is detached anyway.
    }
  }

  /**
   * Detaches and drops the socket without waiting for a closing handshake that a dead link
   * would never complete: `terminate()` where `ws` offers it, else `close()`.
   */
  abandon(): void {
    this.detach();
    try {
      if (this.#socket.terminate) this.#socket.terminate();
      else this.#socket.close(1000, 'abandoned');
    } catch {
      // Nothing more to do: the socket is detached and will be collected.
    }
  }
}
