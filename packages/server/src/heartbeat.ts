import type { WebSocket } from 'ws';

/**
 * One timer for every socket's keep-alive: each sweep terminates the sockets that did not
 * answer the previous ping and pings the others. No per-socket timers (cheap at 100k sockets).
 */
export class Heartbeat {
  private readonly alive = new Map<WebSocket, boolean>();
  private timer?: NodeJS.Timeout;
  // Listeners shared by every socket (an emitter calls them with `this` = the socket): no
  // closures per socket, and `on` rather than `once` (which wraps each listener) for `close`,
  // which fires once anyway. Measured in docs/benchmarks.md (conns).
  private readonly onPong: (this: WebSocket) => void;
  private readonly onClose: (this: WebSocket) => void;

  /** @param intervalMs time between pings; a peer gets one interval to answer. */
  constructor(private readonly intervalMs: number) {
    const alive = this.alive;
    this.onPong = function (this: WebSocket) {
      alive.set(this, true);
    };
    this.onClose = function (this: WebSocket) {
      alive.delete(this);
    };
  }

  /** Starts watching `ws`; it is forgotten when it closes. */
  track(ws: WebSocket): void {
    this.alive.set(ws, true);
    ws.on('pong', this.onPong);
    ws.on('close', this.onClose);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      this.timer.unref();
    }
  }

  private sweep(): void {
    for (const [ws, alive] of this.alive) {
      if (!alive) {
        ws.terminate();
        this.alive.delete(ws);
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
    }
  }

  /** Stops the timer. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
