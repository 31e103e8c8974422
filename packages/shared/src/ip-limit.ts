/**
 * Counts open connections per client address and refuses more than `max` from one address,
 * so one host cannot take all of a worker's connection slots. `0` disables the cap.
 * Memory is bounded by the open connections: an address is forgotten with its last one.
 */
export class IpConnectionLimit {
  private readonly counts = new Map<string, number>();

  /** @param max open connections per address; 0 = unlimited. @default 0 */
  constructor(readonly max = 0) {}

  /** Takes a slot for `ip`; false when it has `max` already. Pair every true with {@link release}. */
  acquire(ip: string): boolean {
    const n = this.counts.get(ip) ?? 0;
    if (this.max > 0 && n >= this.max) return false;
    this.counts.set(ip, n + 1);
    return true;
  }

  /** Frees a slot taken by {@link acquire}. */
  release(ip: string): void {
    const n = this.counts.get(ip) ?? 0;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
  }

  /** Open connections of `ip`. */
  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }
}
