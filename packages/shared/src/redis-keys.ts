import { partitionOf } from './redis-partition.js';

/**
 * Names of every Redis key and pub/sub channel Herald uses, all under one prefix, so several
 * deployments (or tests) can share a Redis without seeing each other. See docs/cluster.md.
 *
 * On a Redis Cluster (`partitions` given) every name carries a hash tag right after the prefix:
 * `{N}` (N = {@link partitionOf} the channel, user or node id) for what belongs to one channel,
 * user or node, so all keys and the pub/sub channel of a Herald channel live in one slot; and
 * `{nodes}` for the membership records, the sweep lock and the broadcast channel, which are read
 * together. Without `partitions` the names are the single-instance ones, unchanged.
 */
export class RedisKeys {
  /** Whether names carry cluster hash tags (pub/sub is then sharded: SPUBLISH/SSUBSCRIBE). */
  readonly clustered: boolean;
  private readonly membership: string;

  /**
   * @param prefix prepended to every key and channel. @default "herald:"
   * @param partitions hash-tag partitions on a Redis Cluster; undefined = one Redis. @default undefined
   */
  constructor(
    readonly prefix = 'herald:',
    readonly partitions?: number,
  ) {
    this.clustered = partitions !== undefined;
    this.membership = this.clustered ? `${prefix}{nodes}` : prefix;
  }

  /** The prefix plus the hash tag of `name`'s partition (just the prefix on one Redis). */
  scope(name: string): string {
    return this.partitions === undefined ? this.prefix : `${this.prefix}{${partitionOf(name, this.partitions)}}`;
  }

  /** Every scope a per-node set may be split over: one per partition (one on a single Redis). */
  scopes(): string[] {
    if (this.partitions === undefined) return [this.prefix];
    return Array.from({ length: this.partitions }, (_, n) => `${this.prefix}{${n}}`);
  }

  /** Sorted set of live workers: member = node id, score = lease expiry (ms since epoch). */
  get nodes(): string {
    return `${this.membership}nodes`;
  }

  /** String with a worker's membership record (JSON), expiring with its lease. */
  node(id: string): string {
    return `${this.membership}node:${id}`;
  }

  /** Hash `{o: latest offset, e: epoch}` of a channel's history stream. */
  historyMeta(channel: string): string {
    return `${this.scope(channel)}h:${channel}`;
  }

  /** List of a channel's retained history entries (envelopes with their position). */
  historyList(channel: string): string {
    return `${this.scope(channel)}hl:${channel}`;
  }

  /** Hash of a channel's presence: field = connection id, value = `<node>\n<user as JSON>`. */
  presence(channel: string): string {
    return `${this.scope(channel)}p:${channel}`;
  }

  /**
   * Set of a node's presence entries, `<channel>\n<conn>`, so a dead node can be swept. On a
   * cluster there is one per partition (`scope` = {@link scope} of the channel), in the slot of
   * the channels it lists, so adding an entry stays one atomic script.
   */
  nodePresence(id: string, scope = this.prefix): string {
    return `${scope}pn:${id}`;
  }

  /** Short lock taken by the node that sweeps expired nodes. */
  get sweepLock(): string {
    return `${this.membership}sweep-lock`;
  }

  /** Pub/sub channel of a Herald channel's events. */
  channel(channel: string): string {
    return `${this.scope(channel)}ch:${channel}`;
  }

  /** Pub/sub channel of a user's direct messages. */
  user(user: string): string {
    return `${this.scope(user)}u:${user}`;
  }

  /** Pub/sub channel of commands for one node. */
  nodeChannel(id: string): string {
    return `${this.scope(id)}n:${id}`;
  }

  /** Pub/sub channel of commands for every node. */
  get broadcast(): string {
    return `${this.membership}all`;
  }
}
