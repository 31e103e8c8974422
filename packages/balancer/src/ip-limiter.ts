/**
 * Counts open WebSocket tunnels per client address and refuses new ones over the cap, so one
 * address cannot take every file descriptor of the balancer.
 */
export class IpLimiter {
  private readonly counts = new Map<string, number>();

  /** @param max - tunnels allowed per address; 0 = no cap. @default 1000 */
  constructor(private readonly max: number) {}

  /**
   * @param ip - client address
   * @returns true (and counts the tunnel) when the address is under the cap
   */
  acquire(ip: string): boolean {
    const current = this.counts.get(ip) ?? 0;
    if (this.max > 0 && current >= this.max) return false;
    this.counts.set(ip, current + 1);
    return true;
  }

  /** @param ip - client address whose tunnel closed */
  release(ip: string): void {
    const current = this.counts.get(ip) ?? 0;
    if (current <= 1) this.counts.delete(ip);
    else this.counts.set(ip, current - 1);
  }

  /** Number of addresses with open tunnels. */
  get addresses(): number {
    return this.counts.size;
  }
}
