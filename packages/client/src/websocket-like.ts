/**
 * The part of the WebSocket API the client uses. Both the browser's `WebSocket` and the
 * `ws` package's `WebSocket` fit it, so one code base serves both (STYLE: pass platform
 * pieces in). Event parameters are `any` because the two declare different event classes.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: destroys the socket at once, without a closing handshake (used for dead links). */
  terminate?(): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `readyState` of an open socket (same value in the browser API and `ws`). */
export const OPEN = 1;
