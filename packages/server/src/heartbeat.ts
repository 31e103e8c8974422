import type { WebSocket } from 'ws';

/**
 * One timer for every socket's keep-alive: each sweep terminates the sockets that did not
 * answer the previous ping and pings the others. No per-socket timers (cheap at 100k sockets).
 */
export class Heartbeat {
  private readonly alive = new Map<WebSocket, boolean>();
  private timer?: NodeJS.Timeout;

  /** @param intervalMs time between pings; a peer gets one interval to answer. */
  constructor(private readonly intervalMs: number) {}

  /** Starts watching `ws`; it is forgotten when it closes. */
  track(ws: WebSocket): void {
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.once('close', () => this.alive.delete(ws));
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
