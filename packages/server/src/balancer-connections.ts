/**
 * The connections of a worker that came through each balancer instance (by the tag of
 * `balancer-tag.ts`), so a balancer that shuts down can have exactly its connections drained.
 * Connections without a tag are not tracked.
 */
export class BalancerConnections<T extends object> {
  private readonly byBalancer = new Map<string, Set<T>>();
  private readonly tagOf = new Map<T, string>();

  /** Remembers that `conn` came through `balancer`. */
  add(conn: T, balancer: string): void {
    let set = this.byBalancer.get(balancer);
    if (!set) this.byBalancer.set(balancer, (set = new Set()));
    set.add(conn);
    this.tagOf.set(conn, balancer);
  }

  /** Forgets `conn` (closed); a no-op for untracked connections. */
  remove(conn: T): void {
    const balancer = this.tagOf.get(conn);
    if (balancer === undefined) return;
    this.tagOf.delete(conn);
    const set = this.byBalancer.get(balancer)!;
    set.delete(conn);
    if (set.size === 0) this.byBalancer.delete(balancer);
  }

  /** The open connections that came through `balancer`. */
  of(balancer: string): T[] {
    return [...(this.byBalancer.get(balancer) ?? [])];
  }

  /** Connections per balancer id (for logs and tests). */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.byBalancer].map(([id, set]) => [id, set.size]));
  }
}
