import type { WebSocketConstructor, WebSocketLike } from './websocket-like.js';

/**
 * A WebSocket opened beside a working fallback connection, to learn whether WebSockets get
 * through again: it succeeds when the server's first frame (the `welcome`) arrives, and is closed
 * right after (1000) either way. The client then reconnects over WebSocket for real.
 */
export class WebSocketProbe {
  #socket?: WebSocketLike;
  #timer: ReturnType<typeof setTimeout>;
  #done = false;

  /**
   * @param timeoutMs the probe fails when no frame arrived by then.
   * @param onResult called once: true when a frame arrived over the WebSocket.
   */
  constructor(Ctor: WebSocketConstructor, url: string, protocols: string[] | undefined, timeoutMs: number, private readonly onResult: (ok: boolean) => void) {
    this.#timer = setTimeout(() => this.#finish(false), timeoutMs);
    try {
      const socket = protocols ? new Ctor(url, protocols) : new Ctor(url);
      this.#socket = socket;
      socket.onmessage = () => this.#finish(true);
      socket.onerror = () => undefined;
      socket.onclose = () => this.#finish(false);
    } catch {
      queueMicrotask(() => this.#finish(false));
    }
  }

  #finish(ok: boolean): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#close();
    this.onResult(ok);
  }

  #close(): void {
    const socket = this.#socket;
    if (!socket) return;
    socket.onmessage = socket.onclose = null;
    try {
      socket.close(1000, 'probe');
    } catch {
      // Still connecting on some platforms: it is dropped anyway.
    }
  }

  /** Stops the probe without reporting. */
  cancel(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#close();
  }
}
