import type { PresenceMember } from '@herald/protocol';

/**
 * Who is subscribed to which channel, across the cluster.
 *
 * Rules: `members` is a read of shared state, never a request to other nodes; entries of a
 * node that died disappear within a bounded time without that node's help.
 */
export interface Presence {
  /** Adds a connection to a channel's members. */
  add(channel: string, member: PresenceMember): Promise<void>;
  /** Removes a connection from a channel's members. */
  remove(channel: string, member: PresenceMember): Promise<void>;
  /** The channel's members, cluster-wide. */
  members(channel: string): Promise<PresenceMember[]>;
  /** Releases resources. */
  close(): Promise<void>;
}
