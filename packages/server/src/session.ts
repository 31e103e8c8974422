import { randomBytes } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import {
  CloseCode,
  ErrorCode,
  decodeBinaryFrame,
  decodeClientFrame,
  encodeBinaryFrame,
  encodeServerFrame,
  type ClientFrame,
  type FrameError,
  type ServerFrame,
  type StreamPosition,
} from '@herald/protocol';
import type { Broker, ChannelMessage } from './broker.js';
import type { History } from './history.js';
import type { Presence } from './presence.js';
import type { Hub, HubMember } from './hub.js';
import { toServerFrame, writeFramed } from './hub.js';
import type { Namespaces } from './namespaces.js';
import type { Identity } from './identity.js';
import { canPublish, canSubscribe } from './access.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './logger.js';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';

/** Limits applied to each `/ws` connection. */
export interface SessionLimits {
  /** `bufferedAmount` above which the connection is closed with 4008. @default 1048576 */
  sendBufferBytes: number;
  /** Channels one connection may subscribe to at once. @default 1000 */
  maxSubscriptions: number;
  /** Time a closing connection gets to flush its close frame before it is terminated, in ms. @default 5000 */
  closeGraceMs: number;
}

/** Everything a session needs from its worker. */
export interface SessionDeps {
  node: string;
  heartbeatMs: number;
  hub: Hub;
  broker: Broker;
  presence: Presence;
  history: History;
  namespaces: Namespaces;
  limits: SessionLimits;
  metrics: Metrics;
  log: Logger;
}

/** A subscription of this session: while recovering, live events wait in `buffer`. */
interface Subscription {
  buffer?: Array<{ frame: Buffer | Uint8Array; binary: boolean; offset?: number }>;
}

/** A fresh connection id. */
export function newConnectionId(): string {
  return randomBytes(9).toString('base64url');
}

/**
 * One `/ws` connection: decodes client frames, applies the channel protocol and writes
 * frames back, closing the connection when its send buffer passes the limit.
 */
export class Session implements HubMember {
  readonly id = newConnectionId();
  private readonly subs = new Map<string, Subscription>();
  private closing = false;
  private readonly log: Logger;

  constructor(
    private readonly ws: WebSocket,
    private readonly identity: Identity,
    private readonly deps: SessionDeps,
  ) {
    this.log = deps.log.child({ conn: this.id });
  }

  get user(): string | null {
    return this.identity.user;
  }

  /** Sends the welcome frame and starts handling frames. */
  start(): void {
    const { ws, deps } = this;
    deps.metrics.connections.inc({ endpoint: 'ws' });
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('error', (err) => this.log.debug({ err }, 'socket error'));
    ws.once('close', () => this.onClose());
    deps.hub.addConnection(this).catch((err) => this.log.warn({ err }, 'direct-message subscription failed'));
    this.sendFrame({ type: 'welcome', conn: this.id, node: deps.node, user: this.identity.user, heartbeat: deps.heartbeatMs });
  }

  // ---- outgoing ----------------------------------------------------------

  private write(data: Buffer | Uint8Array | string, binary: boolean, wire?: Buffer): void {
    const { ws } = this;
    if (this.closing || ws.readyState !== WebSocket.OPEN) return;
    if (!wire || !writeFramed(ws, wire)) ws.send(data, { binary });
    this.deps.metrics.framesOut.inc();
    // Checked after the write: the buffer exceeds the limit by at most one message.
    if (ws.bufferedAmount > this.deps.limits.sendBufferBytes) {
      this.log.info({ buffered: ws.bufferedAmount }, 'slow consumer, closing');
      this.close(CloseCode.SlowConsumer, 'slow consumer');
    }
  }

  private sendFrame(frame: ServerFrame): void {
    this.write(encodeServerFrame(frame), false);
  }

  private sendError(error: FrameError): void {
    this.deps.metrics.errors.inc({ code: error.code });
    const frame: ServerFrame = { type: 'error', code: error.code, message: error.message };
    if (error.id !== undefined) frame.id = error.id;
    this.sendFrame(frame);
  }

  deliver(channel: string, frame: Buffer | Uint8Array, binary: boolean, offset?: number, wire?: Buffer): void {
    const sub = this.subs.get(channel);
    if (!sub) return;
    if (sub.buffer) sub.buffer.push({ frame, binary, offset });
    else this.write(frame, binary, wire);
  }

  deliverDirect(frame: Buffer): void {
    this.write(frame, false);
  }

  /** Closes with `code`; a peer that does not take the close frame is terminated after the grace time. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.deps.metrics.closes.inc({ code: String(code) });
    this.ws.close(code, reason);
    const timer = setTimeout(() => this.ws.terminate(), this.deps.limits.closeGraceMs);
    timer.unref();
    this.ws.once('close', () => clearTimeout(timer));
  }

  // ---- incoming ----------------------------------------------------------

  private onMessage(data: RawData, isBinary: boolean): void {
    this.deps.metrics.framesIn.inc();
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary) {
      const decoded = decodeBinaryFrame(buf);
      if (!decoded.ok) return this.sendError(decoded.error);
      const { channel, payload } = decoded.frame;
      // Copy: the payload is a view into ws's receive buffer.
      this.publish(channel, { bytes: Uint8Array.from(payload) }).catch((error: FrameError) => this.sendError(error));
      return;
    }
    const decoded = decodeClientFrame(buf.toString('utf8'));
    if (!decoded.ok) return this.sendError(decoded.error);
    this.handle(decoded.frame).catch((err: unknown) => {
      const id = decoded.frame.id;
      if (isFrameError(err)) return this.sendError(id === undefined ? err : { ...err, id });
      this.log.error({ err, type: decoded.frame.type }, 'frame handler failed');
      this.sendError({ code: ErrorCode.Internal, message: 'internal error', id });
    });
  }

  private ack(id: number | undefined, fields: Record<string, unknown> = {}): void {
    if (id !== undefined) this.sendFrame({ type: 'ack', id, ...fields });
  }

  private async handle(frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'ping':
        return this.sendFrame(frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id });
      case 'subscribe':
        return this.subscribe(frame.channel, frame.since, frame.id);
      case 'unsubscribe':
        if (!this.subs.has(frame.channel)) throw frameError(ErrorCode.NotFound, 'not subscribed to this channel');
        await this.unsubscribe(frame.channel);
        return this.ack(frame.id);
      case 'publish': {
        const position = await this.publish(frame.channel, { data: frame.data });
        return this.ack(frame.id, position ? { offset: position.offset, epoch: position.epoch } : {});
      }
      case 'presence': {
        const ns = this.deps.namespaces.forChannel(frame.channel);
        const refusal = canSubscribe(this.identity, frame.channel, ns);
        if (refusal) throw frameError(ErrorCode.Forbidden, refusal);
        if (!ns.presence) throw frameError(ErrorCode.BadRequest, 'presence is off in this namespace');
        const members = await this.deps.presence.members(frame.channel).catch(unavailable);
        return this.ack(frame.id, { members });
      }
      case 'send':
        await this.deps.broker.sendDirect({ user: frame.user, from: this.identity.user, data: frame.data }).catch(unavailable);
        return this.ack(frame.id);
      case 'auth':
        // Tokens given after the upgrade are handled by the auth layer before frames reach here.
        throw frameError(ErrorCode.BadRequest, 'already authenticated');
    }
  }

  private async subscribe(channel: string, since: StreamPosition | undefined, id: number | undefined): Promise<void> {
    const { deps } = this;
    const ns = deps.namespaces.forChannel(channel);
    const refusal = canSubscribe(this.identity, channel, ns);
    if (refusal) throw frameError(ErrorCode.Forbidden, refusal);
    if (this.subs.has(channel)) {
      // Idempotent: a second subscribe only reports the current position.
      const position = ns.historySize > 0 ? await deps.history.position(channel).catch(unavailable) : undefined;
      return this.ack(id, position ? { ...position, recovered: true } : {});
    }
    if (this.subs.size >= deps.limits.maxSubscriptions) {
      throw frameError(ErrorCode.BadRequest, `too many subscriptions (limit ${deps.limits.maxSubscriptions})`);
    }
    // Live events are buffered from the moment the hub knows this subscription, so none is
    // lost between reading history and going live; duplicates are dropped by offset.
    const sub: Subscription = ns.historySize > 0 ? { buffer: [] } : {};
    this.subs.set(channel, sub);
    try {
      await deps.hub.subscribe(channel, this);
      let ackFields: Record<string, unknown> = {};
      if (ns.historySize > 0) {
        let last: number;
        if (since) {
          const recovery = await deps.history.recover(channel, since);
          for (const m of recovery.messages) this.writeMessage(m);
          last = recovery.messages.at(-1)?.offset ?? since.offset;
          if (since.epoch !== recovery.position.epoch) last = 0;
          ackFields = { offset: recovery.position.offset, epoch: recovery.position.epoch, recovered: recovery.recovered };
        } else {
          const position = await deps.history.position(channel);
          last = position.offset;
          ackFields = { offset: position.offset, epoch: position.epoch, recovered: true };
        }
        if (this.subs.get(channel) !== sub) return; // unsubscribed or closed meanwhile
        this.ack(id, ackFields);
        const buffered = sub.buffer ?? [];
        sub.buffer = undefined;
        for (const b of buffered) if (b.offset === undefined || b.offset > last) this.write(b.frame, b.binary);
      } else {
        this.ack(id, ackFields);
      }
    } catch (err) {
      if (this.subs.get(channel) === sub) {
        this.subs.delete(channel);
        deps.hub.unsubscribe(channel, this);
      }
      throw isFrameError(err) ? err : unavailableError(err);
    }
    // After the ack: the subscription stands even when the cluster cannot be told of the join
    // right now (Redis down); the member is then missing from presence until it resubscribes.
    if (ns.presence && this.subs.get(channel) === sub) {
      await this.join(channel).catch((err) => this.log.warn({ err, channel }, 'presence join failed'));
    }
  }

  private writeMessage(m: ChannelMessage): void {
    if (m.bytes) this.write(encodeBinaryFrame(m.channel, m.bytes), true);
    else this.write(encodeServerFrame(toServerFrame(m)), false);
  }

  private async join(channel: string): Promise<void> {
    const member = { user: this.identity.user, conn: this.id };
    await this.deps.presence.add(channel, member);
    await this.deps.broker.publish({ kind: 'join', channel, ...member });
  }

  private async unsubscribe(channel: string): Promise<void> {
    this.subs.delete(channel);
    this.deps.hub.unsubscribe(channel, this);
    if (!this.deps.namespaces.forChannel(channel).presence) return;
    const member = { user: this.identity.user, conn: this.id };
    try {
      await this.deps.presence.remove(channel, member);
      await this.deps.broker.publish({ kind: 'leave', channel, ...member });
    } catch (err) {
      // The presence lease of this node cleans up what could not be removed now.
      this.log.warn({ err, channel }, 'presence removal failed');
    }
  }

  private async publish(channel: string, payload: { data?: unknown; bytes?: Uint8Array }): Promise<StreamPosition | undefined> {
    const ns = this.deps.namespaces.forChannel(channel);
    const refusal = canPublish(this.identity, channel, ns);
    if (refusal) throw frameError(ErrorCode.Forbidden, refusal);
    this.deps.metrics.publishes.inc({ origin: 'ws' });
    const message: ChannelMessage = { kind: 'message', channel, from: this.identity.user, ...payload };
    return this.deps.broker
      .publish(message, ns.historySize > 0 ? { size: ns.historySize, ttlMs: ns.historyTtlMs } : undefined)
      .catch(unavailable);
  }

  private onClose(): void {
    this.closing = true;
    this.deps.metrics.connections.dec({ endpoint: 'ws' });
    this.deps.hub.removeConnection(this);
    for (const channel of [...this.subs.keys()]) void this.unsubscribe(channel);
  }
}

function frameError(code: FrameError['code'], message: string): FrameError {
  return { code, message };
}

function isFrameError(err: unknown): err is FrameError {
  return typeof err === 'object' && err !== null && 'code' in err && 'message' in err && !(err instanceof Error);
}

function unavailableError(err: unknown): FrameError {
  if (err instanceof BrokerUnavailableError) return frameError(ErrorCode.Unavailable, err.message);
  throw err;
}

/** Maps a broker failure to an `unavailable` frame error; rethrows anything else. */
function unavailable(err: unknown): never {
  throw unavailableError(err);
}
