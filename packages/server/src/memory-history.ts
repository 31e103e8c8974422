import type { StreamPosition } from '@herald/protocol';
import type { ChannelMessage, HistoryPolicy } from './broker.js';
import type { History, Recovery } from './history.js';
import { newEpoch } from './epoch.js';

interface Stream {
  epoch: string;
  offset: number;
  messages: ChannelMessage[];
  expiresAt: number;
}

/** Options of {@link MemoryHistory}. */
export interface MemoryHistoryOptions {
  /** Clock. @default Date.now */
  now?: () => number;
  /**
   * Lifetime of a stream nobody published to yet (created when someone subscribes, so a later
   * recovery can check its epoch), in ms. @default 300000
   */
  emptyStreamTtlMs?: number;
  /** Interval of the sweep that drops expired streams, in ms; 0 = no timer. @default 30000 */
  sweepIntervalMs?: number;
}

/**
 * History kept in this process: the history half of {@link MemoryBroker}, which creates it (the
 * broker appends, atomically with its publish). Every stream expires (its TTL
 * after the last publish, or `emptyStreamTtlMs` when empty) and a periodic sweep drops expired
 * ones, so subscribing to ever new channel names cannot grow memory without bound.
 */
export class MemoryHistory implements History {
  private readonly streams = new Map<string, Stream>();
  private readonly now: () => number;
  private readonly emptyTtl: number;
  private readonly timer?: NodeJS.Timeout;

  constructor(options: MemoryHistoryOptions = {}) {
    this.now = options.now ?? Date.now;
    this.emptyTtl = options.emptyStreamTtlMs ?? 300_000;
    const interval = options.sweepIntervalMs ?? 30_000;
    if (interval > 0) {
      this.timer = setInterval(() => this.sweep(), interval);
      this.timer.unref();
    }
  }

  private stream(channel: string): Stream | undefined {
    const s = this.streams.get(channel);
    if (s && s.expiresAt <= this.now()) {
      this.streams.delete(channel);
      return undefined;
    }
    return s;
  }

  /** Appends `message` (copied) with the next offset; called by the memory broker. */
  append(message: ChannelMessage, policy: HistoryPolicy): ChannelMessage {
    let s = this.stream(message.channel);
    if (!s) {
      s = { epoch: newEpoch(), offset: 0, messages: [], expiresAt: 0 };
      this.streams.set(message.channel, s);
    }
    s.offset += 1;
    s.expiresAt = this.now() + policy.ttlMs;
    const stored: ChannelMessage = { ...message, offset: s.offset, epoch: s.epoch };
    s.messages.push(stored);
    if (s.messages.length > policy.size) s.messages.splice(0, s.messages.length - policy.size);
    return stored;
  }

  async position(channel: string): Promise<StreamPosition> {
    let s = this.stream(channel);
    if (!s) {
      // An empty stream still gets an epoch, so a client can recover from offset 0 later.
      s = { epoch: newEpoch(), offset: 0, messages: [], expiresAt: this.now() + this.emptyTtl };
      this.streams.set(channel, s);
    }
    return { offset: s.offset, epoch: s.epoch };
  }

  async recover(channel: string, since: StreamPosition): Promise<Recovery> {
    const position = await this.position(channel);
    const s = this.streams.get(channel)!;
    if (since.epoch !== s.epoch) return { messages: [], position, recovered: false };
    const messages = s.messages.filter((m) => m.offset! > since.offset);
    const first = s.messages[0]?.offset ?? s.offset + 1;
    return { messages, position, recovered: since.offset >= first - 1 };
  }

  /** Stops the sweep timer and forgets every stream. */
  close(): void {
    clearInterval(this.timer);
    this.streams.clear();
  }

  /** Drops expired streams (run periodically by the timer). */
  sweep(): void {
    const now = this.now();
    for (const [channel, s] of this.streams) if (s.expiresAt <= now) this.streams.delete(channel);
  }
}
