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
import { encodeChannelMessage, writeFramed } from './hub.js';
import { closeWithGrace } from './close.js';
import type { Namespaces } from './namespaces.js';
import type { Identity } from './identity.js';
import { canPublish, canSubscribe } from './access.js';
import type { Metrics } from './metrics.js';
import type { Logger } from '@herald/shared';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';
import { TokenError } from './errors/token-error.js';
import type { Authenticator } from './auth.js';
import { ConnectionRateLimiter, DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit.js';

/** Limits applied to each `/ws` connection. */
export interface SessionLimits {
  /** `bufferedAmount` above which the connection is closed with 4008. @default 1048576 */
  sendBufferBytes: number;
  /** Channels one connection may subscribe to at once. @default 1000 */
  maxSubscriptions: number;
  /** Time a closing connection gets to flush its close frame before it is terminated, in ms. @default 5000 */
  closeGraceMs: number;
  /** Per-connection rate limits. @default DEFAULT_RATE_LIMITS */
  rate?: RateLimits;
  /** Largest message in bytes (the byte bucket holds at least this much). @default 65536 */
  maxMessageBytes?: number;
}

/** Frames a connection may send while its `auth` frame is being verified; they are handled after it. */
const MAX_FRAMES_DURING_AUTH = 32;

/** setTimeout's longest delay; later token expiries are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  /** Verifies `auth` frames; without it they are refused as in mode `none`. */
  auth?: Authenticator;
}

/** How a session starts. */
export interface SessionStart {
  /** True when the identity must still come from an `auth` frame (mode `required`, no token at upgrade). @default false */
  awaitingAuth?: boolean;
}

/** A subscription of this session: while recovering, live events wait in `buffer`. */
interface Subscription {
  buffer?: Array<{ frame: Buffer | Uint8Array; binary: boolean; offset?: number }>;
  /** The presence join, once started: resolves true when the cluster was told. */
  joined?: Promise<boolean>;
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
  private childLog?: Logger;
  private readonly rate: ConnectionRateLimiter;
  /** True until an `auth` frame established the identity (mode `required` without an upgrade token). */
  private awaitingAuth: boolean;
  /** Frames that arrived while an `auth` frame was being verified; undefined when none is. */
  private authQueue?: Array<{ data: RawData; isBinary: boolean }>;
  private authTimer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private identity: Identity,
    private readonly deps: SessionDeps,
    start: SessionStart = {},
  ) {
    this.awaitingAuth = start.awaitingAuth ?? false;
    this.rate = new ConnectionRateLimiter(deps.limits.rate ?? DEFAULT_RATE_LIMITS, deps.limits.maxMessageBytes ?? 65_536);
  }

  /** The connection's logger, made on first use: most connections never log (memory per connection). */
  private get log(): Logger {
    return (this.childLog ??= this.deps.log.child({ conn: this.id }));
  }

  get user(): string | null {
    return this.identity.user;
  }

  /**
   * Starts handling frames and sends the welcome frame — or, while awaiting an `auth` frame,
   * arms the auth deadline: the welcome then follows a successful `auth` frame.
   */
  start(): void {
    const { ws, deps } = this;
    deps.metrics.connections.inc({ endpoint: 'ws' });
    // Shared listeners (see below): no closures per connection.
    sessionOf.set(ws, this);
    ws.on('message', onSocketMessage);
    ws.on('ping', onSocketPing);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose); // `on`, not `once` (a wrapper per socket): close fires once
    if (this.awaitingAuth) {
      const timeoutMs = deps.auth?.authTimeoutMs ?? 5000;
      this.authTimer = setTimeout(() => this.close(CloseCode.Unauthorized, 'authentication timeout'), timeoutMs);
      this.authTimer.unref();
      return;
    }
    this.establish();
  }

  /** Registers the (now known) identity with the hub, arms its expiry and sends the welcome frame. */
  private establish(): void {
    const { deps } = this;
    deps.hub.addConnection(this).catch((err) => this.log.warn({ err }, 'direct-message subscription failed'));
    this.armExpiry();
    this.sendFrame({ type: 'welcome', conn: this.id, node: deps.node, user: this.identity.user, heartbeat: deps.heartbeatMs });
  }

  /** Closes the connection with 4001 when its token expires. */
  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const at = this.identity.expiresAt;
    if (at === undefined) return;
    const ms = at - Date.now();
    if (ms <= 0) return this.close(CloseCode.Unauthorized, 'token expired');
    this.expiryTimer = setTimeout(() => this.armExpiry(), Math.min(ms, MAX_TIMER_MS));
    this.expiryTimer.unref();
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
    // Capped: a client sending garbage as fast as it can must not get a flood back.
    if (!this.rate.allowError()) return;
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

  lost(channel: string, frame: Buffer): void {
    const sub = this.subs.get(channel);
    if (!sub) return;
    if (sub.buffer) sub.buffer.push({ frame, binary: false });
    else this.write(frame, false);
  }

  /** Closes with `code`; a peer that does not take the close frame is terminated after the grace time. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.deps.metrics.closes.inc({ code: String(code) });
    closeWithGrace(this.ws, code, reason, this.deps.limits.closeGraceMs);
  }

  // ---- incoming ----------------------------------------------------------

  /**
   * Charges a frame to the rate limiter. A refused frame gets a `rate_limited` error (with
   * its id; none for protocol pings, `idOf` null); sustained abuse closes the connection
   * with 4029. Returns whether to handle the frame.
   */
  private admit(bytes: number, idOf: (() => number | undefined) | null): boolean {
    const verdict = this.rate.admit(bytes);
    if (verdict === 'ok') return true;
    if (verdict === 'abuse') {
      this.log.info('sustained rate limit abuse, closing');
      this.close(CloseCode.RateLimited, 'rate limited');
    } else if (idOf) {
      this.sendError({ code: ErrorCode.RateLimited, message: 'rate limit exceeded', id: idOf() });
    }
    return false;
  }

  /** @internal Called by the shared socket listener. */
  onPing(): void {
    this.admit(0, null);
  }

  /** @internal Called by the shared socket listener. */
  onError(err: Error): void {
    this.log.debug({ err }, 'socket error');
  }

  /** @internal Called by the shared socket listener (and for frames queued during auth). */
  onMessage(data: RawData, isBinary: boolean): void {
    this.deps.metrics.framesIn.inc();
    if (this.closing) return;
    if (this.authQueue) {
      // Handled once the pending `auth` frame is verified, in order.
      if (this.authQueue.length >= MAX_FRAMES_DURING_AUTH) return this.close(CloseCode.Policy, 'too many frames before authentication');
      this.authQueue.push({ data, isBinary });
      return;
    }
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const idOf = () => (isBinary ? undefined : frameIdOf(buf));
    if (!this.admit(buf.length, idOf)) return;
    if (this.awaitingAuth) return this.onMessageBeforeAuth(buf, isBinary);
    if (isBinary) {
      const decoded = decodeBinaryFrame(buf);
      if (!decoded.ok) return this.sendError(decoded.error);
      const { channel, payload } = decoded.frame;
      // Copy: the payload is a view into ws's receive buffer.
      this.publish(channel, { bytes: Uint8Array.from(payload) }).catch((err: unknown) => this.answerFailure(err, undefined, 'binary publish'));
      return;
    }
    const decoded = decodeClientFrame(buf.toString('utf8'));
    if (!decoded.ok) return this.sendError(decoded.error);
    this.handle(decoded.frame).catch((err: unknown) => this.answerFailure(err, decoded.frame.id, decoded.frame.type));
  }

  /** Answers a failed frame: its documented error, or `internal` (logged) for anything unexpected. */
  private answerFailure(err: unknown, id: number | undefined, what: string): void {
    if (isFrameError(err)) return this.sendError(id === undefined ? err : { ...err, id });
    this.log.error({ err, type: what }, 'frame handler failed');
    this.sendError({ code: ErrorCode.Internal, message: 'internal error', id });
  }

  private pong(id: number | undefined): void {
    this.sendFrame(id === undefined ? { type: 'pong' } : { type: 'pong', id });
  }

  /** Mode `required` before the `auth` frame: only `auth` and `ping` are accepted. */
  private onMessageBeforeAuth(buf: Buffer, isBinary: boolean): void {
    const decoded = isBinary ? undefined : decodeClientFrame(buf.toString('utf8'));
    if (decoded && !decoded.ok) return this.sendError(decoded.error);
    const frame = decoded?.frame;
    if (frame?.type === 'ping') return this.pong(frame.id);
    if (frame?.type === 'auth') {
      this.authenticate(frame.token, frame.id).catch((err: unknown) => {
        if (isFrameError(err)) return this.sendError({ ...err, id: frame.id });
        this.log.error({ err }, 'auth frame failed');
        this.close(CloseCode.Internal, 'internal error');
      });
      return;
    }
    this.sendError({ code: ErrorCode.Unauthorized, message: 'send an auth frame first', id: frame?.id });
  }

  /**
   * Verifies an `auth` frame's token. Success establishes the identity (welcome frame, then
   * the ack); an invalid or expired token closes the connection with 4001.
   */
  private async authenticate(token: string, id: number | undefined): Promise<void> {
    const { auth } = this.deps;
    if (!auth || auth.mode === 'none') throw frameError(ErrorCode.BadRequest, 'authentication is off on this server');
    if (this.identity.authenticated) throw frameError(ErrorCode.BadRequest, 'already authenticated');
    // Upgrading an anonymous session (mode `optional`) must not keep subscriptions made under other permissions.
    if (this.subs.size > 0) throw frameError(ErrorCode.BadRequest, 'authenticate before subscribing');
    this.authQueue = [];
    let identity: Identity;
    try {
      identity = await auth.verify(token);
    } catch (err) {
      this.authQueue = undefined;
      if (!(err instanceof TokenError)) throw err;
      this.log.info({ reason: err.message }, 'auth frame refused');
      return this.close(CloseCode.Unauthorized, err.message.slice(0, 120));
    }
    const queued = this.authQueue;
    this.authQueue = undefined;
    if (this.closing) return;
    clearTimeout(this.authTimer);
    if (!this.awaitingAuth) this.deps.hub.removeConnection(this); // re-registered under the new user
    this.awaitingAuth = false;
    this.identity = identity;
    this.establish();
    if (this.closing) return; // already expired
    this.ack(id);
    for (const q of queued) this.onMessage(q.data, q.isBinary);
  }

  private ack(id: number | undefined, fields: Record<string, unknown> = {}): void {
    if (id !== undefined) this.sendFrame({ type: 'ack', id, ...fields });
  }

  private async handle(frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'ping':
        return this.pong(frame.id);
      case 'subscribe':
        return this.subscribe(frame.channel, frame.since, frame.id);
      case 'unsubscribe':
        if (!this.subs.has(frame.channel)) throw frameError(ErrorCode.NotFound, 'not subscribed to this channel');
        await this.unsubscribe(frame.channel);
        return this.ack(frame.id);
      case 'publish': {
        // Encoded once here; every node frames these bytes without parsing them again (issue 11).
        const position = await this.publish(frame.channel, { json: Buffer.from(JSON.stringify(frame.data)) });
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
        return this.authenticate(frame.token, frame.id);
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
          let recovery = await deps.history.recover(channel, since);
          if (recovery.position.epoch !== since.epoch) {
            // A new epoch (Redis restarted, or the stream expired): when all of it is still there,
            // the client is brought onto it from its first offset instead of skipping it;
            // otherwise it goes on from the latest position (told by the `lost` frame below).
            const fresh = await deps.history.recover(channel, { offset: 0, epoch: recovery.position.epoch });
            recovery = { messages: fresh.recovered ? fresh.messages : [], position: fresh.position, recovered: false };
          }
          if (!recovery.recovered) {
            // Told before the replay: what follows continues after this position (SPEC §5).
            const from = recovery.messages.length > 0 ? recovery.messages[0]!.offset! - 1 : recovery.position.offset;
            this.sendFrame({ type: 'lost', channel, offset: from, epoch: recovery.position.epoch });
          }
          for (const m of recovery.messages) this.writeMessage(m);
          last = recovery.messages.at(-1)?.offset ?? (recovery.position.epoch === since.epoch ? since.offset : recovery.position.offset);
          ackFields = { offset: recovery.position.offset, epoch: recovery.position.epoch, recovered: recovery.recovered };
        } else {
          const position = await deps.history.position(channel);
          last = position.offset;
          ackFields = { offset: position.offset, epoch: position.epoch, recovered: true };
        }
        await this.joinOnce(channel, sub, ns.presence);
        this.ack(id, ackFields);
        const buffered = sub.buffer ?? [];
        sub.buffer = undefined;
        for (const b of buffered) if (b.offset === undefined || b.offset > last) this.write(b.frame, b.binary);
      } else {
        await this.joinOnce(channel, sub, ns.presence);
        this.ack(id, ackFields);
      }
    } catch (err) {
      if (this.subs.get(channel) === sub) {
        this.subs.delete(channel);
        deps.hub.unsubscribe(channel, this);
      }
      throw isFrameError(err) ? err : unavailableError(err);
    }
  }

  /**
   * Announces the member before the subscribe is acknowledged, so an acked subscriber is in the
   * presence list. A failed join (Redis down) is logged, not answered: the subscription stands,
   * and local delivery goes on. Throws `not_found` when an unsubscribe overtook the subscribe.
   */
  private async joinOnce(channel: string, sub: Subscription, presence: boolean): Promise<void> {
    if (this.subs.get(channel) !== sub) throw frameError(ErrorCode.NotFound, 'unsubscribed before the subscription completed');
    if (!presence) return;
    sub.joined = this.join(channel).then(
      () => true,
      (err: unknown) => {
        this.log.warn({ err, channel }, 'presence join failed');
        return false;
      },
    );
    await sub.joined;
    if (this.subs.get(channel) !== sub) throw frameError(ErrorCode.NotFound, 'unsubscribed before the subscription completed');
  }

  private writeMessage(m: ChannelMessage): void {
    if (m.bytes) this.write(encodeBinaryFrame(m.channel, m.bytes), true);
    else this.write(encodeChannelMessage(m), false);
  }

  private async join(channel: string): Promise<void> {
    const member = { user: this.identity.user, conn: this.id };
    await this.deps.presence.add(channel, member);
    await this.deps.broker.publish({ kind: 'join', channel, ...member });
  }

  private async unsubscribe(channel: string): Promise<void> {
    const sub = this.subs.get(channel);
    this.subs.delete(channel);
    this.deps.hub.unsubscribe(channel, this);
    // A leave only follows a join that happened, and never overtakes it.
    if (!sub?.joined || !(await sub.joined)) return;
    const member = { user: this.identity.user, conn: this.id };
    try {
      await this.deps.presence.remove(channel, member);
      await this.deps.broker.publish({ kind: 'leave', channel, ...member });
    } catch (err) {
      // The presence lease of this node cleans up what could not be removed now.
      this.log.warn({ err, channel }, 'presence removal failed');
    }
  }

  private async publish(channel: string, payload: { json?: Uint8Array; bytes?: Uint8Array }): Promise<StreamPosition | undefined> {
    const ns = this.deps.namespaces.forChannel(channel);
    const refusal = canPublish(this.identity, channel, ns);
    if (refusal) throw frameError(ErrorCode.Forbidden, refusal);
    this.deps.metrics.publishes.inc({ origin: 'ws' });
    const message: ChannelMessage = { kind: 'message', channel, from: this.identity.user, ...payload };
    // Binary frames carry no offset on the wire, so they are not kept in history: a client could
    // not advance its position past them and would get them again on every recovery.
    const keep = ns.historySize > 0 && !payload.bytes;
    return this.deps.broker.publish(message, keep ? { size: ns.historySize, ttlMs: ns.historyTtlMs } : undefined).catch(unavailable);
  }

  /** @internal Called by the shared socket listener. */
  onClose(): void {
    this.closing = true;
    clearTimeout(this.authTimer);
    clearTimeout(this.expiryTimer);
    this.authQueue = undefined;
    this.deps.metrics.connections.dec({ endpoint: 'ws' });
    this.deps.hub.removeConnection(this);
    for (const channel of [...this.subs.keys()]) void this.unsubscribe(channel);
  }
}

/**
 * The session of each socket, for the listeners below: they are shared by every socket (an
 * emitter calls them with `this` = the socket), so an idle connection carries no closures of
 * its own (memory per connection, docs/benchmarks.md). Entries go with their socket.
 */
const sessionOf = new WeakMap<WebSocket, Session>();

function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  sessionOf.get(this)?.onMessage(data, isBinary);
}

function onSocketPing(this: WebSocket): void {
  // Pings count against the frame rate too: ws answers them itself, so a ping flood costs CPU.
  sessionOf.get(this)?.onPing();
}

function onSocketError(this: WebSocket, err: Error): void {
  sessionOf.get(this)?.onError(err);
}

function onSocketClose(this: WebSocket): void {
  sessionOf.get(this)?.onClose();
}

/** The `id` of a text frame, when it has a valid one (for the `rate_limited` error). */
function frameIdOf(buf: Buffer): number | undefined {
  const decoded = decodeClientFrame(buf.toString('utf8'));
  return decoded.ok ? decoded.frame.id : decoded.error.id;
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
