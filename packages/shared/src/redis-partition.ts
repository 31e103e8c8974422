/**
 * Partition of a name (a Herald channel, a user, a node id) on a Redis Cluster: FNV-1a (32 bit)
 * of its UTF-8 bytes modulo `partitions`. Every key and pub/sub channel of that name carries the
 * partition as its hash tag (`{N}`, docs/cluster.md), so they share one slot: the Lua
 * append-and-publish of a channel stays one atomic script, and a worker's sharded subscriptions
 * spread over at most `partitions` slots. The function is fixed: workers and balancers of one
 * deployment must agree on it, whatever their version.
 *
 * @param name - the name to place
 * @param partitions - number of partitions (`HERALD_REDIS_PARTITIONS`), ≥ 1
 * @returns an integer in `[0, partitions)`
 */
export function partitionOf(name: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(name, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/** A seed node of a Redis Cluster. */
export interface RedisClusterSeed {
  host: string;
  port: number;
}

/**
 * Parses one `host:port` seed of `HERALD_REDIS_CLUSTER` (`[v6]:port` for IPv6 addresses).
 *
 * @throws Error naming the entry when it is not `host:port` with a port in 1-65535
 */
export function parseClusterSeed(entry: string): RedisClusterSeed {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(entry);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new Error(`"${entry}" is not host:port`);
  return { host: m[1] ?? m[2]!, port };
}
