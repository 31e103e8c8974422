import { encodeBinaryFrame, encodeMessageFrame, encodeServerFrame, type ServerFrame, type StreamPosition } from '@herald/protocol';
import type { Broker, ChannelEvent, ChannelMessage, DirectMessage } from './broker.js';
import { Interest } from './interest.js';
import type { Logger } from '@herald/shared';
import { frameOnce, type WireFrame } from './ws-fast-write.js';

/** What the hub needs of a local connection. */
export interface HubMember {
  readonly id: string;
  readonly user: string | null;
  /**
   * Delivers a frame that was encoded once for every local subscriber of `channel`; `wire` is
   * the same message framed once for WebSocket transports (see `ws-fast-write.ts`), to be
   * written as is when possible.
   */
  deliver(channel: string, frame: Buffer | Uint8Array, binary: boolean, offset?: number, wire?: WireFrame): void;
  /** Sends an already-encoded direct message frame. */
  deliverDirect(frame: Buffer): void;
  /** Events of `channel` were missed on this node (see `BrokerHandler.onLost`); `frame` is the encoded `lost` frame. */
  lost(channel: string, frame: Buffer): void;
  /** Closes the connection (admin disconnect). */
  close(code: number, reason: string): void;
}

/**
 * Local fan-out: which local connections listen to which channel and user, and delivery of
 * broker events to them. Each event is encoded once and the same bytes go to every socket.
 * The hub asks the broker for exactly the channels and users it has local members for.
 */
export class Hub {
  private readonly channels: Interest<HubMember>;
  private readonly users: Interest<HubMember>;

  constructor(broker: Broker, log: Logger) {
    const onError = (key: string, err: unknown) => log.warn({ err, key }, 'broker unsubscribe failed');
    this.channels = new Interest((c) => broker.subscribe(c), (c) => broker.unsubscribe(c), onError);
    this.users = new Interest((u) => broker.subscribeUser(u), (u) => broker.unsubscribeUser(u), onError);
  }

  /** Number of channels with local subscribers. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Registers a connection; resolves once direct messages for its user reach this node. */
  addConnection(member: HubMember): Promise<void> {
    return member.user === null ? Promise.resolve() : this.users.add(member.user, member);
  }

  /** Forgets a connection (its channel subscriptions are removed by the caller). */
  removeConnection(member: HubMember): void {
    if (member.user !== null) this.users.remove(member.user, member);
  }

  /** Subscribes a local connection to a channel; resolves once the broker delivers it here. */
  subscribe(channel: string, member: HubMember): Promise<void> {
    return this.channels.add(channel, member);
  }

  /** Unsubscribes a local connection from a channel. */
  unsubscribe(channel: string, member: HubMember): void {
    this.channels.remove(channel, member);
  }

  /** Delivers a broker channel event to local subscribers, encoding it once. */
  deliver(event: ChannelEvent): void {
    const members = this.channels.get(event.channel);
    if (!members || members.size === 0) return;
    let frame: Buffer | Uint8Array;
    let binary = false;
    if (event.kind === 'message' && event.bytes) {
      frame = encodeBinaryFrame(event.channel, event.bytes);
      binary = true;
    } else if (event.kind === 'message') {
      frame = encodeChannelMessage(event);
    } else {
      frame = Buffer.from(encodeServerFrame(toServerFrame(event)));
    }
    const offset = event.kind === 'message' ? event.offset : undefined;
    // Framed once here, so each socket gets one write of the same bytes instead of a header
    // allocation and a two-buffer writev per socket (docs/benchmarks.md has the numbers).
    const wire = frameOnce(frame, binary);
    for (const m of members) m.deliver(event.channel, frame, binary, offset, wire);
  }

  /** Tells every local subscriber of `channel` that events were missed (`lost` frame), in order with its events. */
  lost(channel: string, position?: StreamPosition): void {
    const members = this.channels.get(channel);
    if (!members || members.size === 0) return;
    const frame = Buffer.from(encodeServerFrame(position ? { type: 'lost', channel, offset: position.offset, epoch: position.epoch } : { type: 'lost', channel }));
    for (const m of members) m.lost(channel, frame);
  }

  /** Delivers a direct message to every local connection of its user. */
  deliverDirect(message: DirectMessage): void {
    const members = this.users.get(message.user);
    if (!members || members.size === 0) return;
    const frame = Buffer.from(encodeServerFrame({ type: 'direct', from: message.from, data: message.data }));
    for (const m of members) m.deliverDirect(frame);
  }

  /** Closes every local connection of `user`; returns how many. */
  disconnectUser(user: string, code: number, reason: string): number {
    const members = [...(this.users.get(user) ?? [])];
    for (const m of members) m.close(code, reason);
    return members.length;
  }
}

/** The wire frame of a presence event (messages: {@link encodeChannelMessage}). */
export function toServerFrame(event: Exclude<ChannelEvent, ChannelMessage>): ServerFrame {
  return { type: event.kind, channel: event.channel, user: event.user, conn: event.conn };
}

/**
 * The `message` frame of a text message: its JSON text goes in as is (parse once, issue 11),
 * with `offset`/`epoch` spliced in; only a message that has just its parsed `data` (the HTTP
 * API on the memory broker) is stringified here.
 */
export function encodeChannelMessage(m: ChannelMessage): Uint8Array {
  const json = m.json ?? Buffer.from(JSON.stringify(m.data));
  return encodeMessageFrame({ channel: m.channel, json, from: m.from, offset: m.offset, epoch: m.epoch });
}

