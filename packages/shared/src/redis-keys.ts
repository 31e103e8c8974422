/**
 * Names of every Redis key and pub/sub channel Herald uses, all under one prefix, so several
 * deployments (or tests) can share a Redis without seeing each other. See docs/cluster.md.
 */
export class RedisKeys {
  /** @param prefix prepended to every key and channel. @default "herald:" */
  constructor(readonly prefix = 'herald:') {}

  /** Sorted set of live workers: member = node id, score = lease expiry (ms since epoch). */
  get nodes(): string {
    return `${this.prefix}nodes`;
  }

  /** String with a worker's membership record (JSON), expiring with its lease. */
  node(id: string): string {
    return `${this.prefix}node:${id}`;
  }

  /** Hash `{o: latest offset, e: epoch}` of a channel's history stream. */
  historyMeta(channel: string): string {
    return `${this.prefix}h:${channel}`;
  }

  /** List of a channel's retained history entries (envelopes with their position). */
  historyList(channel: string): string {
    return `${this.prefix}hl:${channel}`;
  }

  /** Hash of a channel's presence: field = connection id, value = `<node>\n<user as JSON>`. */
  presence(channel: string): string {
    return `${this.prefix}p:${channel}`;
  }

  /** Set of a node's presence entries, `<channel>\n<conn>`, so a dead node can be swept. */
  nodePresence(id: string): string {
    return `${this.prefix}pn:${id}`;
  }

  /** Short lock taken by the node that sweeps expired nodes. */
  get sweepLock(): string {
    return `${this.prefix}sweep-lock`;
  }

  /** Pub/sub channel of a Herald channel's events. */
  channel(channel: string): string {
    return `${this.prefix}ch:${channel}`;
  }

  /** Pub/sub channel of a user's direct messages. */
  user(user: string): string {
    return `${this.prefix}u:${user}`;
  }

  /** Pub/sub channel of commands for one node. */
  nodeChannel(id: string): string {
    return `${this.prefix}n:${id}`;
  }

  /** Pub/sub channel of commands for every node. */
  get broadcast(): string {
    return `${this.prefix}all`;
  }
}
