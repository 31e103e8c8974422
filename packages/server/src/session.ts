import { randomBytes } from 'node:crypto';
import {
  CloseCode,
  DEFAULT_MAX_JSON_DEPTH,
  ErrorCode,
  decodeBinaryFrame,
  decodeClientFrame,
  encodeBinaryFrame,
  encodeServerFrame,
  type ClientFrame,
  type FrameError as FrameProblem,
  type ServerFrame,
  type StreamPosition,
} from '@herald/protocol';
import type { Broker, ChannelMessage } from './broker.js';
import type { History } from './history.js';
import type { Presence } from './presence.js';
import type { Hub, HubMember } from './hub.js';
import { encodeChannelMessage } from './hub.js';
import type { Namespaces } from './namespaces.js';
import type { Identity } from './identity.js';
import { canPublish, canSubscribe } from './access.js';
import type { Metrics } from './metrics.js';
import type { Logger } from '@herald/shared';
import type { Authenticator } from './auth.js';
import { ConnectionRateLimiter, DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit.js';
import type { Transport, TransportEvents } from './transport.js';
import type { WireFrame } from './ws-fast-write.js';
import { FrameError, toFrameError, unavailable } from './errors/frame-error.js';
import { ChannelSubscription } from './channel-subscription.js';
import { FrameQueue, type Answer } from './frame-queue.js';
import { armAuthDeadline, armExpiry, verifyAuthFrame } from './session-auth.js';

/** Limits applied to each connection. */
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
  /**
   * Frames of one connection queued or being handled, not yet answered. A frame beyond it is
   * refused with `rate_limited` (in its turn, with its id) and counted as a refused frame
   * (sustained: 4029); at four times as many unanswered frames the connection is closed with 1008.
   * @default 64
   */
  maxFramesInFlight?: number;
  /** Deepest nesting of arrays/objects in a text frame; deeper is `bad_request`. @default 64 */
  maxJsonDepth?: number;
}

/** The default of {@link SessionLimits.maxFramesInFlight}. */
export const DEFAULT_MAX_FRAMES_IN_FLIGHT = 64;

/** Unanswered frames, as a multiple of maxFramesInFlight, at which the connection is closed with 1008. */
const HARD_QUEUE_FACTOR = 4;

/** Everything a session needs from its worker: one object shared by every session. */
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
  /** Label of the transport in metrics (`endpoint`). @default "ws" */
  endpoint?: string;
}

/** How a session starts. */
export interface SessionStart {
  /** True when the identity must still come from an `auth` frame (mode `required`, no token at upgrade). @default false */
  awaitingAuth?: boolean;
}

/**
 * The life of a session, changed only by {@link Session.setState}:
 * - `awaiting-auth`: mode `required` without a token yet; only `auth` and `ping` are handled.
 * - `open`: the identity is known, the welcome frame went out.
 * - `closing`: the server closes it (a close frame is on its way); nothing more is written.
 * - `closed`: the transport is gone; subscriptions and presence are withdrawn.
 */
export type SessionState = 'awaiting-auth' | 'open' | 'closing' | 'closed';

/** A fresh connection id. */
export function newConnectionId(): string {
  return randomBytes(9).toString('base64url');
}

/**
 * One client connection, whatever its transport: decodes client frames, applies the channel
 * protocol (auth, rate admission, order and answers, subscriptions with recovery, presence) and
 * writes frames back, closing the connection when its send buffer passes the limit.
 */
export class Session implements HubMember, TransportEvents {
  readonly id = newConnectionId();
  private readonly subs = new Map<string, ChannelSubscription>();
  private current: SessionState;
  private childLog?: Logger;
  private readonly rate: ConnectionRateLimiter;
  /** Made on the first frame: an idle connection has none (memory per connection). */
  private queue?: FrameQueue;
  private authTimer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  /** Whether a too-deep frame was logged already (once per connection). */
  private loggedDeep = false;

  constructor(
    private readonly transport: Transport,
    private identity: Identity,
    private readonly deps: SessionDeps,
    start: SessionStart = {},
  ) {
    this.current = start.awaitingAuth ? 'awaiting-auth' : 'open';
    this.rate = new ConnectionRateLimiter(deps.limits.rate ?? DEFAULT_RATE_LIMITS, deps.limits.maxMessageBytes ?? 65_536);
  }

  /** The connection's logger, made on first use: most connections never log (memory per connection). */
  private get log(): Logger {
    return (this.childLog ??= this.deps.log.child({ conn: this.id }));
  }

  get user(): string | null {
    return this.identity.user;
  }

  /** The session's state. */
  get state(): SessionState {
    return this.current;
  }

  /**
   * The one place the state changes: returns whether it did (a session never goes back from
   * `closing`/`closed`), and logs `old -> new` at debug.
   */
  private setState(next: SessionState): boolean {
    const old = this.current;
    if (old === next || old === 'closed' || (old === 'closing' && next !== 'closed')) return false;
    this.current = next;
    // Checked first: the child logger is made only when it will be used (memory per connection).
    if (this.deps.log.isLevelEnabled('debug')) this.log.debug({ from: old, to: next }, `${old} -> ${next}`);
    return true;
  }

  private get ending(): boolean {
    return this.current === 'closing' || this.current === 'closed';
  }

  /**
   * Starts handling frames and sends the welcome frame — or, while awaiting an `auth` frame,
   * arms the auth deadline: the welcome then follows a successful `auth` frame.
   */
  start(): void {
    const { deps } = this;
    deps.metrics.connections.inc({ endpoint: deps.endpoint ?? 'ws' });
    this.transport.bind(this);
    if (this.current === 'awaiting-auth') {
      this.authTimer = armAuthDeadline(this, deps.auth?.authTimeoutMs ?? 5000);
      return;
    }
    this.establish();
  }

  /** Registers the (now known) identity with the hub, arms its expiry and sends the welcome frame. */
  private establish(): void {
    const { deps } = this;
    deps.hub.addConnection(this).catch((err) => this.log.warn({ err }, 'direct-message subscription failed'));
    clearTimeout(this.expiryTimer);
    this.expiryTimer = armExpiry(this, this.identity);
    this.sendFrame({ type: 'welcome', conn: this.id, node: deps.node, user: this.identity.user, heartbeat: deps.heartbeatMs });
  }

  // ---- outgoing ----------------------------------------------------------

  private write(data: Buffer | Uint8Array | string, binary: boolean, wire?: WireFrame): void {
    const { transport } = this;
    if (this.ending || !transport.open) return;
    transport.send(data, binary, wire);
    this.deps.metrics.countFrameOut();
    // Checked after the write: the buffer exceeds the limit by at most one message.
    if (transport.bufferedAmount > this.deps.limits.sendBufferBytes) {
      this.log.info({ buffered: transport.bufferedAmount }, 'slow consumer, closing');
      this.close(CloseCode.SlowConsumer, 'slow consumer');
    }
  }

  private sendFrame(frame: ServerFrame): void {
    this.write(encodeServerFrame(frame), false);
  }

  /**
   * Writes an error frame. The answer to a frame with an `id` always goes out (those frames are
   * bounded by the frame rate); unsolicited errors (no `id`) are capped, so a client sending
   * garbage as fast as it can does not get a flood back.
   */
  private sendError(error: FrameProblem): void {
    this.deps.metrics.errors.inc({ code: error.code });
    if (error.id === undefined && !this.rate.allowError()) return;
    const frame: ServerFrame = { type: 'error', code: error.code, message: error.message };
    if (error.id !== undefined) frame.id = error.id;
    this.sendFrame(frame);
  }

  deliver(channel: string, frame: Buffer | Uint8Array, binary: boolean, offset?: number, wire?: WireFrame): void {
    const sub = this.subs.get(channel);
    if (!sub || sub.hold(frame, binary, offset)) return;
    this.write(frame, binary, wire);
  }

  deliverDirect(frame: Buffer): void {
    this.write(frame, false);
  }

  /** A `lost` frame of a subscribed channel: in order with its live events (held while recovering). */
  lost(channel: string, frame: Buffer): void {
    const sub = this.subs.get(channel);
    if (!sub || sub.hold(frame, false, undefined)) return;
    this.write(frame, false);
  }

  /** Closes with `code`; a peer that does not take the close is cut off after the grace time. */
  close(code: number, reason: string): void {
    if (!this.setState('closing')) return;
    this.deps.metrics.closes.inc({ code: String(code) });
    this.transport.close(code, reason);
  }

  // ---- incoming ----------------------------------------------------------

  /** @internal Transport event: a protocol ping, charged to the frame rate. */
  onPing(): void {
    if (this.rate.admit(0) === 'abuse') this.abuse();
  }

  /** @internal Transport event. */
  onError(err: Error): void {
    this.log.debug({ err }, 'transport error');
  }

  /**
   * @internal Transport event: one client frame. Admission (rate, frames in flight) and decoding
   * happen now; the frame's handling and its answer take their turn in the connection's queue.
   */
  onFrame(buf: Buffer, isBinary: boolean): void {
    const { deps } = this;
    deps.metrics.framesIn.inc();
    if (this.ending) return;
    const verdict = this.rate.admit(buf.length);
    if (verdict === 'abuse') return this.abuse();
    const queue = (this.queue ??= new FrameQueue());
    const maxInFlight = deps.limits.maxFramesInFlight ?? DEFAULT_MAX_FRAMES_IN_FLIGHT;
    if (queue.size >= maxInFlight * HARD_QUEUE_FACTOR) {
      this.log.info({ pending: queue.size }, 'too many frames in flight, closing');
      return this.close(CloseCode.Policy, 'too many frames in flight');
    }
    if (verdict === 'refused') {
      deps.metrics.framesRefused.inc({ reason: 'rate' });
      return this.answerLater({ code: ErrorCode.RateLimited, message: 'rate limit exceeded', id: isBinary ? undefined : this.idOf(buf) });
    }
    if (queue.size >= maxInFlight) {
      deps.metrics.framesRefused.inc({ reason: 'in_flight' });
      if (this.rate.refuse() === 'abuse') return this.abuse();
      return this.answerLater({ code: ErrorCode.RateLimited, message: `too many frames in flight (limit ${maxInFlight})`, id: isBinary ? undefined : this.idOf(buf) });
    }
    if (isBinary) {
      const decoded = decodeBinaryFrame(buf);
      if (!decoded.ok) return this.answerLater(decoded.error);
      const { channel, payload } = decoded.frame;
      // Copy: the payload is a view into the transport's receive buffer.
      const bytes = Uint8Array.from(payload);
      return queue.push({
        concurrent: true,
        run: () => (this.current === 'awaiting-auth' ? this.errorAnswer(new FrameError(ErrorCode.Unauthorized, 'send an auth frame first'), undefined) : this.answerOf(this.publish(channel, { bytes }).then(() => undefined), undefined, 'binary publish')),
      });
    }
    const decoded = decodeClientFrame(buf.toString('utf8'), { maxDepth: deps.limits.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH });
    if (!decoded.ok) {
      if (decoded.error.tooDeep) return this.refuseDeep(decoded.error);
      return this.answerLater(decoded.error);
    }
    const frame = decoded.frame;
    queue.push({ concurrent: isConcurrent(frame), run: () => this.answerOf(this.handle(frame), frame.id, frame.type) });
  }

  /** Sustained abuse of the rate limit: 4029. */
  private abuse(): void {
    this.log.info('sustained rate limit abuse, closing');
    this.close(CloseCode.RateLimited, 'rate limited');
  }

  /** The `id` of a refused text frame, when it has a valid one (for its `rate_limited` answer). */
  private idOf(buf: Buffer): number | undefined {
    const decoded = decodeClientFrame(buf.toString('utf8'), { maxDepth: this.deps.limits.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH });
    return decoded.ok ? decoded.frame.id : decoded.error.id;
  }

  /** A frame nested too deep: hostile, so counted as a refused frame and logged once per connection. */
  private refuseDeep(error: FrameProblem): void {
    this.deps.metrics.framesRefused.inc({ reason: 'depth' });
    if (!this.loggedDeep) {
      this.loggedDeep = true;
      this.log.info({ limit: this.deps.limits.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH }, 'frame nested too deep refused (logged once per connection)');
    }
    if (this.rate.refuse() === 'abuse') return this.abuse();
    this.answerLater(error);
  }

  /** Queues an answer-only task: the error is written in its frame's turn. */
  private answerLater(error: FrameProblem): void {
    this.queue!.push({ concurrent: true, run: () => () => this.sendError(error) });
  }

  /**
   * Turns a frame handler's outcome into its answer, written in the frame's turn: the handler's
   * own (an ack it returns), its documented error, or `internal` (logged) for anything unexpected.
   */
  private answerOf(work: Promise<Answer> | Answer, id: number | undefined, what: string): Promise<Answer> {
    return Promise.resolve(work).then(
      (answer) => answer,
      (err: unknown) => this.errorAnswer(err, id, what),
    );
  }

  private errorAnswer(err: unknown, id: number | undefined, what = 'frame'): Answer {
    const e = toFrameError(err);
    if (e instanceof FrameError) return () => this.sendError({ code: e.code, message: e.message, id });
    this.log.error({ err, type: what }, 'frame handler failed');
    return () => this.sendError({ code: ErrorCode.Internal, message: 'internal error', id });
  }

  private ack(id: number | undefined, fields: Record<string, unknown> = {}): Answer {
    if (id !== undefined) return () => this.sendFrame({ type: 'ack', id, ...fields });
    return undefined;
  }

  private pong(id: number | undefined): Answer {
    return () => this.sendFrame(id === undefined ? { type: 'pong' } : { type: 'pong', id });
  }

  /** Handles a decoded frame in its turn; resolves with its answer (thrown FrameErrors are answered). */
  private async handle(frame: ClientFrame): Promise<Answer> {
    if (this.ending) return undefined;
    if (this.current === 'awaiting-auth' && frame.type !== 'auth' && frame.type !== 'ping') {
      throw new FrameError(ErrorCode.Unauthorized, 'send an auth frame first');
    }
    switch (frame.type) {
      case 'ping':
        return this.pong(frame.id);
      case 'subscribe':
        return this.subscribe(frame.channel, frame.since, frame.id);
      case 'unsubscribe':
        if (!this.subs.has(frame.channel)) throw new FrameError(ErrorCode.NotFound, 'not subscribed to this channel');
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
        if (refusal) throw new FrameError(ErrorCode.Forbidden, refusal);
        if (!ns.presence) throw new FrameError(ErrorCode.BadRequest, 'presence is off in this namespace');
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

  /**
   * Verifies an `auth` frame's token. Success establishes the identity (welcome frame, then
   * the ack); an invalid or expired token closes the connection with 4001. The frames sent
   * after it wait in the queue and are handled under the new identity.
   */
  private async authenticate(token: string, id: number | undefined): Promise<Answer> {
    const outcome = await verifyAuthFrame(this.deps.auth, this.identity, this.subs.size, token);
    if (this.ending) return undefined;
    if (!outcome.ok) {
      this.log.info({ reason: outcome.reason }, 'auth frame refused');
      this.close(CloseCode.Unauthorized, outcome.reason);
      return undefined;
    }
    clearTimeout(this.authTimer);
    this.authTimer = undefined;
    if (!this.setState('open')) this.deps.hub.removeConnection(this); // was open already: re-registered under the new user
    this.identity = outcome.identity;
    this.establish();
    if (this.ending) return undefined; // already expired
    return this.ack(id);
  }

  private async subscribe(channel: string, since: StreamPosition | undefined, id: number | undefined): Promise<Answer> {
    const { deps } = this;
    const ns = deps.namespaces.forChannel(channel);
    const refusal = canSubscribe(this.identity, channel, ns);
    if (refusal) throw new FrameError(ErrorCode.Forbidden, refusal);
    if (this.subs.has(channel)) {
      // Idempotent: a second subscribe only reports the current position (nothing was recovered).
      const position = ns.historySize > 0 ? await deps.history.position(channel).catch(unavailable) : undefined;
      return this.ack(id, position ? { ...position, recovered: false } : {});
    }
    if (this.subs.size >= deps.limits.maxSubscriptions) {
      throw new FrameError(ErrorCode.BadRequest, `too many subscriptions (limit ${deps.limits.maxSubscriptions})`);
    }
    // Live events are held from the moment the hub knows this subscription (see ChannelSubscription).
    const sub = new ChannelSubscription(ns.historySize > 0);
    this.subs.set(channel, sub);
    try {
      await deps.hub.subscribe(channel, this);
      if (ns.historySize === 0) {
        await this.joinOnce(channel, sub, ns.presence);
        return this.ack(id);
      }
      let last: number;
      let ackFields: Record<string, unknown>;
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
        // A fresh subscription: nothing to recover, so `recovered` is false (SPEC §3).
        const position = await deps.history.position(channel);
        last = position.offset;
        ackFields = { offset: position.offset, epoch: position.epoch, recovered: false };
      }
      await this.joinOnce(channel, sub, ns.presence);
      const ack = this.ack(id, ackFields);
      // The ack, then what arrived live meanwhile: written together, in this frame's turn.
      return () => {
        ack?.();
        for (const e of sub.release(last)) this.write(e.frame, e.binary);
      };
    } catch (err) {
      if (this.subs.get(channel) === sub) {
        this.subs.delete(channel);
        deps.hub.unsubscribe(channel, this);
      }
      throw toFrameError(err);
    }
  }

  /**
   * Announces the member before the subscribe is acknowledged, so an acked subscriber is in the
   * presence list. A failed join (Redis down) is logged, not answered. Throws `not_found` when
   * the connection closed (its subscriptions withdrawn) before the subscription completed.
   */
  private async joinOnce(channel: string, sub: ChannelSubscription, presence: boolean): Promise<void> {
    if (this.subs.get(channel) !== sub) throw new FrameError(ErrorCode.NotFound, 'unsubscribed before the subscription completed');
    if (!presence) return;
    await sub.join(
      () => this.join(channel),
      (err) => this.log.warn({ err, channel }, 'presence join failed'),
    );
    if (this.subs.get(channel) !== sub) throw new FrameError(ErrorCode.NotFound, 'unsubscribed before the subscription completed');
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
    const member = { user: this.identity.user, conn: this.id };
    try {
      await sub?.leave(async () => {
        await this.deps.presence.remove(channel, member);
        await this.deps.broker.publish({ kind: 'leave', channel, ...member });
      });
    } catch (err) {
      // The presence lease of this node cleans up what could not be removed now.
      this.log.warn({ err, channel }, 'presence removal failed');
    }
  }

  private async publish(channel: string, payload: { json?: Uint8Array; bytes?: Uint8Array }): Promise<StreamPosition | undefined> {
    const ns = this.deps.namespaces.forChannel(channel);
    const refusal = canPublish(this.identity, channel, ns);
    if (refusal) throw new FrameError(ErrorCode.Forbidden, refusal);
    this.deps.metrics.publishes.inc({ origin: this.deps.endpoint ?? 'ws' });
    const message: ChannelMessage = { kind: 'message', channel, from: this.identity.user, ...payload };
    // Binary frames carry no offset on the wire, so they are not kept in history: a client could
    // not advance its position past them and would get them again on every recovery.
    const keep = ns.historySize > 0 && !payload.bytes;
    return this.deps.broker.publish(message, keep ? { size: ns.historySize, ttlMs: ns.historyTtlMs } : undefined).catch(unavailable);
  }

  /** @internal Transport event: the connection is gone. */
  onClose(): void {
    if (!this.setState('closed')) return;
    clearTimeout(this.authTimer);
    clearTimeout(this.expiryTimer);
    this.queue?.stop();
    this.deps.metrics.connections.dec({ endpoint: this.deps.endpoint ?? 'ws' });
    this.deps.hub.removeConnection(this);
    for (const channel of [...this.subs.keys()]) void this.unsubscribe(channel);
  }
}

/**
 * Whether a frame's handling may start while earlier ones run (see FrameTask.concurrent):
 * publishes and direct messages go to the broker's command connection at once and in order;
 * pings and presence reads change nothing. Subscribe, unsubscribe and auth wait for their turn.
 */
function isConcurrent(frame: ClientFrame): boolean {
  return frame.type === 'publish' || frame.type === 'send' || frame.type === 'ping' || frame.type === 'presence';
}
