import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { encodeBinaryFrame, encodeMessageFrame, encodeServerFrame, type ServerFrame, type StreamPosition } from '@herald/protocol';
import type { Broker, ChannelEvent, ChannelMessage, DirectMessage } from './broker.js';
import { Interest } from './interest.js';
import type { Logger } from '@herald/shared';

/** What the hub needs of a local connection. */
export interface HubMember {
  readonly id: string;
  readonly user: string | null;
  /**
   * Delivers a frame that was encoded once for every local subscriber of `channel`; `wire` is
   * the same message framed once (see {@link frameOnce}), to be written as is when possible.
   */
  deliver(channel: string, frame: Buffer | Uint8Array, binary: boolean, offset?: number, wire?: Buffer): void;
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

/**
 * A complete, final, unmasked server WebSocket frame (RFC 6455 §5.2) carrying `payload`:
 * built once per broadcast and written unchanged to every subscriber's socket.
 */
export function frameOnce(payload: Buffer | Uint8Array, binary: boolean): Buffer {
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + length);
  out[0] = 0x80 | (binary ? 0x2 : 0x1);
  if (length < 126) out[1] = length;
  else if (length < 65536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  out.set(payload, head);
  return out;
}

/** The parts of ws's private state {@link writeFramed} relies on. */
interface WsInternals {
  _socket?: Socket;
  _sender?: { _state?: number; _queue?: unknown[]; _firstFragment?: boolean };
}

/**
 * Writes a frame built by {@link frameOnce} straight to the socket of `ws`, bypassing ws's
 * per-send framing. Only when ws's sender is idle (nothing queued behind a compression or a
 * Blob read, no fragmented message open), so frame order is kept; an uncompressed frame
 * (RSV1 clear) is valid even with permessage-deflate negotiated (RFC 7692 §6). Returns false,
 * writing nothing, when the caller must use `ws.send` instead (including a ws release whose
 * internals differ).
 */
export function writeFramed(ws: WebSocket, wire: Buffer): boolean {
  const { _socket: socket, _sender: sender } = ws as unknown as WsInternals;
  if (ws.readyState !== WebSocket.OPEN || !socket || !sender) return false;
  if (sender._state !== 0 || sender._queue?.length !== 0 || sender._firstFragment !== true) return false;
  corkUntilImmediate(socket);
  socket.write(wire);
  return true;
}

/**
 * Lets the frames `ws.send` writes to `ws` during this event-loop iteration leave together
 * (see {@link corkUntilImmediate}); call it before `ws.send`. No-op for a socket ws does not expose.
 */
export function coalesceWrites(ws: WebSocket): void {
  const socket = (ws as unknown as WsInternals)._socket;
  if (socket) corkUntilImmediate(socket);
}

/**
 * Bytes a corked socket may hold before {@link corkUntilImmediate} flushes it early. Small
 * next to the send-buffer limit (1 MiB by default), so coalescing barely moves the point
 * where a slow consumer is closed with 4008.
 */
const COALESCE_MAX_BYTES = 16 * 1024;

/** Sockets corked by {@link corkUntilImmediate}, uncorked together in the next check phase. */
let corked: Socket[] = [];

/**
 * Corks `socket` until the end of this event-loop iteration (setImmediate), so every frame
 * written to it meanwhile — several broadcasts decoded from one Redis read, several publishes
 * read in one poll phase — leaves in one writev instead of one syscall each. Under light load
 * a socket gets one frame per iteration and this costs a cork/uncork pair; under heavy load it
 * is what keeps the syscall count per delivery below one. Frames of ws.send in between go into
 * the same corked buffer, so order is kept.
 */
function corkUntilImmediate(socket: Socket): void {
  if (socket.writableCorked > 0) {
    // Enough is waiting: let it go now instead of growing the user-space buffer (and the
    // bufferedAmount the slow-consumer check reads) with a large burst.
    if (socket.writableLength >= COALESCE_MAX_BYTES) {
      socket.uncork();
      socket.cork();
    }
    return;
  }
  // A socket with bytes already waiting for the kernel is a slow reader: coalescing would not
  // save a syscall there, and it must not make its bufferedAmount look larger than it is.
  if (socket.writableLength > 0) return;
  socket.cork();
  if (corked.push(socket) === 1) setImmediate(uncorkAll);
}

function uncorkAll(): void {
  const sockets = corked;
  corked = [];
  for (const s of sockets) s.uncork();
}
