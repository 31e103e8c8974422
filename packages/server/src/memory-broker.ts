import type { StreamPosition } from '@herald/protocol';
import type { AdminCommand, Broker, BrokerHandler, ChannelEvent, DirectMessage, HistoryPolicy } from './broker.js';
import type { Recovery } from './history.js';
import { MemoryHistory, type MemoryHistoryOptions } from './memory-history.js';

/** Options of {@link MemoryBroker}. */
export interface MemoryBrokerOptions {
  /** Options of the broker's history store. @default {} */
  history?: MemoryHistoryOptions;
}

/**
 * The embedded broker of a single worker: events go straight back to this node, and history
 * is kept in this process ({@link MemoryHistory}, owned by the broker). Delivery is deferred to
 * a microtask so the handler never runs inside a broker call. Nothing is ever interrupted, so
 * `onLost` is never called.
 */
export class MemoryBroker implements Broker {
  private handler?: BrokerHandler;
  private readonly channels = new Set<string>();
  private readonly users = new Set<string>();
  private readonly history: MemoryHistory;
  readonly available = true;

  constructor(options: MemoryBrokerOptions = {}) {
    this.history = new MemoryHistory(options.history);
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
  }

  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
  }

  async subscribeUser(user: string): Promise<void> {
    this.users.add(user);
  }

  async unsubscribeUser(user: string): Promise<void> {
    this.users.delete(user);
  }

  async publish(event: ChannelEvent, history?: HistoryPolicy): Promise<StreamPosition | undefined> {
    const out = event.kind === 'message' && history ? this.history.append(event, history) : event;
    if (this.channels.has(event.channel)) queueMicrotask(() => this.handler?.onChannelEvent(out));
    return out.kind === 'message' && out.offset !== undefined ? { offset: out.offset, epoch: out.epoch! } : undefined;
  }

  position(channel: string): Promise<StreamPosition> {
    return this.history.position(channel);
  }

  recover(channel: string, since: StreamPosition): Promise<Recovery> {
    return this.history.recover(channel, since);
  }

  async sendDirect(message: DirectMessage): Promise<void> {
    if (this.users.has(message.user)) queueMicrotask(() => this.handler?.onDirect(message));
  }

  async command(command: AdminCommand): Promise<void> {
    queueMicrotask(() => this.handler?.onCommand(command));
  }

  async close(): Promise<void> {
    this.handler = undefined;
    this.history.close();
    this.channels.clear();
    this.users.clear();
  }
}
