import { RedisKeys, type Logger, type NodeRecord } from '@herald/shared';
import type { RedisCommandClient } from './redis-client.js';
import { RedisScript } from './redis-script.js';

/**
 * Extends the lease and rewrites the record. Returns 0 when the lease was current, 1 when it
 * had expired but was not swept yet, 2 when it was gone (first announcement, or swept).
 * KEYS: nodes, node key. ARGV: id, expiry, record JSON ('' = no address yet), lease ms, now.
 */
const REFRESH = new RedisScript(
  `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
if not s then return 2 end
if tonumber(s) <= tonumber(ARGV[5]) then return 1 end
return 0
`,
  2,
);

/** KEYS: nodes, node key. ARGV: id. */
const LEAVE = new RedisScript(`redis.call('ZREM', KEYS[1], ARGV[1])\nredis.call('DEL', KEYS[2])\nreturn 1`, 2);

/** Options of {@link RedisMembership}. */
export interface RedisMembershipOptions {
  nodeId: string;
  /** Key prefix. @default "herald:" */
  prefix?: string;
  /** Hash-tag partitions on a Redis Cluster (the records then share the `{nodes}` tag). @default undefined */
  partitions?: number;
  /** Lease length in ms; refreshed every lease/3. @default 10000 */
  leaseMs?: number;
  /** Called when a refresh finds the lease gone after it had been held (the node was swept). */
  onLeaseLost?: () => void;
  /** Clock. @default Date.now */
  now?: () => number;
  log?: Logger;
}

/**
 * Announces this worker in Redis (docs/cluster.md, /work/notes/worker-contract.md): the sorted
 * set `{prefix}nodes` holds its lease expiry, `{prefix}node:{id}` its record with a PX TTL of
 * one lease. Both are refreshed every lease/3 and on every reconnect, and deleted on `stop()`.
 * The lease also keeps this node's presence entries alive (see RedisPresence).
 */
export class RedisMembership {
  readonly nodeId: string;
  readonly leaseMs: number;
  private readonly keys: RedisKeys;
  private readonly now: () => number;
  private readonly started: number;
  private address?: string;
  private timer?: NodeJS.Timeout;
  private held = false;
  private everHeld = false;
  private stopped = false;
  private refreshing?: Promise<void>;
  private readonly onReady = () => void this.refresh().catch(() => undefined);

  constructor(private readonly client: RedisCommandClient, private readonly options: RedisMembershipOptions) {
    this.nodeId = options.nodeId;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.keys = new RedisKeys(options.prefix, options.partitions);
    this.now = options.now ?? Date.now;
    this.started = this.now();
  }

  /** Starts announcing (the lease first; the record once {@link setAddress} gave the address). */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
    this.client.on('ready', this.onReady);
    if (this.client.status === 'ready') this.onReady();
  }

  /** Sets the announced `host:port` and refreshes at once. */
  async setAddress(address: string): Promise<void> {
    this.address = address;
    // A refresh already in flight was built without the address: write again after it.
    await this.refreshing?.catch(() => undefined);
    await this.refresh();
  }

  /** Whether the last refresh succeeded and the lease is current. */
  get live(): boolean {
    return this.held;
  }

  /** Extends the lease now; concurrent calls share one round trip. */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const now = this.now();
    const record: NodeRecord | undefined = this.address ? { id: this.nodeId, address: this.address, started: this.started, heartbeat: now } : undefined;
    try {
      const state = Number(await REFRESH.run(this.client, [this.keys.nodes, this.keys.node(this.nodeId), this.nodeId, now + this.leaseMs, record ? JSON.stringify(record) : '', this.leaseMs, now]));
      this.held = true;
      // State 2 on the first refresh is the first announcement; later it means other nodes
      // swept this one (its lease lapsed, e.g. during a long Redis outage).
      if (state === 2 && this.everHeld) {
        this.options.log?.warn('membership lease was lost and is renewed; restoring presence');
        this.options.onLeaseLost?.();
      }
      this.everHeld = true;
    } catch (err) {
      if (this.held) this.options.log?.warn({ err: (err as Error).message }, 'membership refresh failed');
      this.held = false;
      throw err;
    }
  }

  /** Stops refreshing and deletes the records (graceful shutdown). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.client.off('ready', this.onReady);
    await this.refreshing?.catch(() => undefined);
    await LEAVE.run(this.client, [this.keys.nodes, this.keys.node(this.nodeId), this.nodeId]);
  }
}
