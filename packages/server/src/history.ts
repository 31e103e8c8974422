import type { StreamPosition } from '@herald/protocol';
import type { ChannelMessage } from './broker.js';

/** The result of a recovery read. */
export interface Recovery {
  /** Messages after the requested position, in offset order. */
  messages: ChannelMessage[];
  /** The stream's latest position. */
  position: StreamPosition;
  /** False when messages were lost: the epoch changed or the gap was trimmed. */
  recovered: boolean;
}

/**
 * Read side of channel history. Appending belongs to {@link Broker.publish}, atomically
 * with the publish.
 *
 * Rules: offsets start at 1 and grow by 1 per message; a stream whose history expired or was
 * lost starts again under a new epoch, so an old `(offset, epoch)` is never confused with a new one.
 */
export interface History {
  /** The latest position of `channel` (offset 0 and a fresh epoch for an empty stream). */
  position(channel: string): Promise<StreamPosition>;
  /**
   * Messages of `channel` after `since`. With a different epoch nothing is returned and
   * `recovered` is false; when the gap was partly trimmed the retained messages are returned
   * and `recovered` is false.
   */
  recover(channel: string, since: StreamPosition): Promise<Recovery>;
}
