/**
 * App-level liveness check. Browsers cannot see protocol pings and a half-open TCP link
 * (a laptop that slept, a NAT that forgot the mapping) may not fire `close` for minutes.
 * After `interval` ms without any frame from the server this sends a ping; if nothing at all
 * arrives within `timeout` ms after it, `onDead` is called once.
 */
export class PingWatchdog {
  #lastSeen = 0;
  #tick: ReturnType<typeof setTimeout> | undefined;
  #deadline: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly interval: number,
    private readonly timeout: number,
    private readonly sendPing: () => void,
    private readonly onDead: () => void,
  ) {}

  /** Starts (or restarts) watching. Does nothing when `interval` is 0. */
  start(): void {
    this.stop();
    if (this.interval <= 0) return;
    this.#lastSeen = Date.now();
    this.#schedule(this.interval);
  }

  /** Stops every timer. */
  stop(): void {
    clearTimeout(this.#tick);
    clearTimeout(this.#deadline);
    this.#tick = this.#deadline = undefined;
  }

  /** Records that a frame arrived: the link is alive. */
  seen(): void {
    this.#lastSeen = Date.now();
    if (this.#deadline !== undefined) {
      clearTimeout(this.#deadline);
      this.#deadline = undefined;
      this.#schedule(this.interval);
    }
  }

  #schedule(ms: number): void {
    clearTimeout(this.#tick);
    this.#tick = setTimeout(() => this.#check(), ms);
  }

  #check(): void {
    this.#tick = undefined;
    const idle = Date.now() - this.#lastSeen;
    if (idle < this.interval) return this.#schedule(this.interval - idle);
    this.#deadline = setTimeout(() => {
      this.#deadline = undefined;
      this.onDead();
    }, this.timeout);
    this.sendPing();
  }
}
