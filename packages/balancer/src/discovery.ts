/** A worker reported by a discovery source. */
export interface DiscoveredWorker {
  /** `host:port` the balancer connects to. */
  readonly address: string;
  /** The worker's node id, when the source knows it. */
  readonly nodeId?: string;
}

/**
 * A source of workers. `start` reports the current list and keeps reporting it whenever it may
 * have changed; a source that cannot read its backend keeps quiet (the balancer then keeps the
 * last list — health checks still guard it) rather than reporting an empty one.
 */
export interface Discovery {
  /** Name for logs and `/balancer/status`: `static` or `redis`. */
  readonly name: 'static' | 'redis';
  /**
   * @param onUpdate - called with the full current list
   * @returns when the first list has been reported, or the first attempt failed
   */
  start(onUpdate: (workers: DiscoveredWorker[]) => void): Promise<void>;
  /** Stops reporting and releases connections. */
  stop(): Promise<void>;
}
