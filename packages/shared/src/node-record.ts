import { RedisKeys } from './redis-keys.js';

/**
 * A worker's membership record, the JSON string at `{prefix}node:{id}` (see {@link RedisKeys}).
 * The worker writes it (RedisMembership in @herald/server); the balancer reads it with
 * {@link listLiveNodes} to discover workers. It is the contract between the two.
 */
export interface NodeRecord {
  id: string;
  /** `host:port` where the worker accepts connections. */
  address: string;
  /** When the worker started, ms since epoch. */
  started: number;
  /** Last lease refresh, ms since epoch (the worker's clock). */
  heartbeat: number;
}

/** What {@link listLiveNodes} needs of a Redis client (an ioredis `Redis` satisfies it). */
export interface RedisNodeReader {
  zrangebyscore(key: string, min: number | string, max: number | string): Promise<string[]>;
  mget(...keys: string[]): Promise<Array<string | null>>;
}

/**
 * Live workers: `ZRANGEBYSCORE {prefix}nodes <now> +inf`, then `MGET` of their records,
 * skipping missing or unreadable ones.
 *
 * @param client - a Redis client
 * @param prefix - key prefix, or the deployment's {@link RedisKeys} (a Redis Cluster's). @default "herald:"
 * @param now - the time leases are compared with, ms since epoch. @default Date.now()
 * @returns the records of workers whose lease has not expired
 */
export async function listLiveNodes(client: RedisNodeReader, prefix: string | RedisKeys = 'herald:', now = Date.now()): Promise<NodeRecord[]> {
  // On a cluster the sorted set and the records share the `{nodes}` tag: the MGET is one slot.
  const keys = typeof prefix === 'string' ? new RedisKeys(prefix) : prefix;
  const ids = await client.zrangebyscore(keys.nodes, now, '+inf');
  if (ids.length === 0) return [];
  const values = await client.mget(...ids.map((id) => keys.node(id)));
  const out: NodeRecord[] = [];
  for (const v of values) {
    if (!v) continue;
    try {
      const r = JSON.parse(v) as NodeRecord;
      if (typeof r.id === 'string' && typeof r.address === 'string') out.push(r);
    } catch {
      // A corrupted record is skipped, not fatal: the node rewrites it on its next refresh.
    }
  }
  return out;
}
