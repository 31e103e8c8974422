import type { StreamPosition } from '@herald/protocol';
import type { AdminCommand, Broker, BrokerHandler, ChannelEvent, ChannelMessage, DirectMessage, HistoryPolicy } from './broker.js';
import type { Recovery } from './history.js';
import { newEpoch } from './epoch.js';
import { toUnavailable, type RedisCommandClient, type RedisSubscriberClient } from './redis-client.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from './redis-envelope.js';
import { APPEND_AND_PUBLISH, RedisHistory, appendArgs } from './redis-history.js';
import { RedisKeys, type Logger } from '@herald/shared';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /** This node's id: tags what it publishes, names its node channel. */
  nodeId: string;
  /** Prefix of every key and pub/sub channel. @default "herald:" */
  prefix?: string;
  /**
   * Hash-tag partitions on a Redis Cluster (`HERALD_REDIS_PARTITIONS`): names are tagged and
   * pub/sub is sharded (docs/cluster.md). Undefined = one Redis. @default undefined
   */
  partitions?: number;
  /** Interval of the liveness probe (PING on both connections), in ms. @default 1000 */
  probeIntervalMs?: number;
  /** A PING without a reply after this long marks Redis unavailable and reconnects, in ms. @default 2000 */
  probeTimeoutMs?: number;
  /** `start()` waits at most this long for Redis before it resolves anyway (not ready), in ms. @default 3000 */
  startTimeoutMs?: number;
  /**
   * The command timeout of the clients (`HERALD_REDIS_COMMAND_TIMEOUT_MS`), in ms: a history
   * publish carries a deadline a little before it (`timeout - min(500, timeout / 4)`) after
   * which the Lua script refuses to run, so a publish answered `unavailable` reaches nobody.
   * @default 2000
   */
  commandTimeoutMs?: number;
  /** Lifetime of the epoch of a history stream nobody published to yet, in ms. @default 300000 */
  emptyStreamTtlMs?: number;
  /** Wait before retrying a gap fill that failed (Redis went away again), in ms. @default 250 */
  gapRetryMs?: number;
  /** Epoch generator for new history streams. @default newEpoch (epoch.ts) */
  newEpoch?: () => string;
  log?: Logger;
}

/** Subscribe/unsubscribe at most this many channels per command when restoring. */
const RESUBSCRIBE_CHUNK = 1000;

/** A history channel whose live stream has a hole: live messages wait in `buffer` while it is filled. */
interface Gap {
  buffer: ChannelMessage[];
  /** A fill is running for it. */
  running: boolean;
}

/**
 * The cluster broker on Redis pub/sub (SPEC §5, docs/cluster.md).
 *
 * - One subscriber connection per worker with an exact SUBSCRIBE per channel that has local
 *   subscribers, per user with local connections, plus the node's own channel and the
 *   broadcast channel (on a Redis Cluster: SSUBSCRIBE, one connection per master, through
 *   redis-cluster-client.ts). Subscriptions are restored by the broker after every reconnect.
 * - Messages without history and presence events are delivered on this node at once and
 *   published tagged with the node id; the node drops its own when they come back. So local
 *   delivery goes on while Redis is down, and `publish` then rejects with
 *   {@link BrokerUnavailableError} after delivering locally: never a silent drop.
 * - History messages are appended and published by one Lua script and reach every node, this
 *   one included, through the subscription, so all nodes see a channel's messages in offset order.
 * - Every envelope is encoded once per publish and decoded once per receiving node.
 * - Continuity (SPEC §5): when its subscription was interrupted, or a history message arrives
 *   past a hole (or under a new epoch), the broker fills each history channel's gap from history
 *   before handing over newer messages, or calls `onLost`; channels without history get `onLost`
 *   after every interruption. A history publish is fenced by a deadline (all or none).
 * - A PING probe on both connections detects a Redis that stopped answering (SIGSTOP,
 *   half-open TCP); commands time out (`commandTimeout`) rather than hang.
 */
export class RedisBroker implements Broker {
  private handler?: BrokerHandler;
  private readonly keys: RedisKeys;
  private readonly nodeId: string;
  private readonly log?: Logger;
  private readonly pub: RedisCommandClient;
  private readonly sub: RedisSubscriberClient;
  private readonly channels = new Set<string>();
  private readonly users = new Set<string>();
  /** Last history position handed over per subscribed channel (gap fill, duplicate drop). */
  private readonly lastSeen = new Map<string, StreamPosition>();
  /**
   * Per subscribed history channel with no message handed over yet: the lowest position a local
   * subscriber read after the subscription was in place. Messages after it reach this node live,
   * so it is where a gap fill starts when nothing was seen yet.
   */
  private readonly baseline = new Map<string, StreamPosition>();
  /** History channels being filled. */
  private readonly gaps = new Map<string, Gap>();
  /** Channels without a known position whose subscription was interrupted: `onLost` is due. */
  private readonly pendingLost = new Set<string>();
  private readonly history: RedisHistory;
  private readonly epoch: () => string;
  private subscribed = false;
  private subGeneration = 0;
  private pubProbeOk = true;
  private subProbeOk = true;
  private availableNow = false;
  private closed = false;
  private probeTimer?: NodeJS.Timeout;
  private readonly availabilityWaiters = new Set<() => void>();
  private readonly probeInterval: number;
  private readonly probeTimeout: number;

  constructor(clients: { publisher: RedisCommandClient; subscriber: RedisSubscriberClient }, private readonly options: RedisBrokerOptions) {
    this.pub = clients.publisher;
    this.sub = clients.subscriber;
    this.nodeId = options.nodeId;
    this.keys = new RedisKeys(options.prefix, options.partitions);
    this.log = options.log;
    this.epoch = options.newEpoch ?? newEpoch;
    this.probeInterval = options.probeIntervalMs ?? 1000;
    this.probeTimeout = options.probeTimeoutMs ?? 2000;
    this.history = new RedisHistory(this.pub, { prefix: options.prefix, partitions: options.partitions, emptyStreamTtlMs: options.emptyStreamTtlMs, newEpoch: this.epoch, log: options.log });
    // Whoever created the clients should log errors; this guarantees no `error` goes unhandled.
    this.pub.on('error', () => undefined);
    this.sub.on('error', () => undefined);
    this.pub.on('ready', () => {
      this.pubProbeOk = true;
      this.update();
    });
    for (const ev of ['close', 'end']) this.pub.on(ev, () => this.update());
    this.sub.on('ready', () => void this.onSubscriberReady());
    for (const ev of ['close', 'end']) this.sub.on(ev, () => this.onSubscriberClose());
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel, message));
    if (this.sub.status === 'ready') void this.onSubscriberReady();
  }

  get available(): boolean {
    return this.availableNow;
  }

  /** The publisher can take commands (it may still fail them). */
  private get canPublish(): boolean {
    return !this.closed && this.pub.status === 'ready' && this.pubProbeOk;
  }

  private update(): void {
    const next = !this.closed && this.pub.status === 'ready' && this.pubProbeOk && this.subscribed && this.subProbeOk;
    if (next === this.availableNow) return;
    const line = `broker: ${this.availableNow ? 'available' : 'unavailable'} -> ${next ? 'available' : 'unavailable'}`;
    this.availableNow = next;
    if (this.closed) this.log?.debug({ available: next }, line);
    else if (next) this.log?.info({ available: next }, line);
    else this.log?.warn({ available: next, publisher: this.pub.status, subscriber: this.sub.status }, line);
    if (next) for (const w of [...this.availabilityWaiters]) w();
    try {
      this.handler?.onAvailability(next);
    } catch (err) {
      this.log?.error({ err }, 'availability handler failed');
    }
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => this.probe(), this.probeInterval);
      this.probeTimer.unref();
    }
    if (this.availableNow) return;
    const ms = this.options.startTimeoutMs ?? 3000;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.availabilityWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.availabilityWaiters.add(done);
    });
    if (!this.availableNow) this.log?.warn({ ms }, 'redis not reachable yet; starting unavailable');
  }

  // ---- subscriptions -------------------------------------------------------

  private async onSubscriberReady(): Promise<void> {
    const generation = ++this.subGeneration;
    this.subProbeOk = true;
    this.subscribed = false;
    const wanted = [this.keys.nodeChannel(this.nodeId), this.keys.broadcast, ...[...this.channels].map((c) => this.keys.channel(c)), ...[...this.users].map((u) => this.keys.user(u))];
    try {
      for (let i = 0; i < wanted.length; i += RESUBSCRIBE_CHUNK) await this.sub.subscribe(...wanted.slice(i, i + RESUBSCRIBE_CHUNK));
    } catch (err) {
      // The connection dropped meanwhile (the next `ready` retries) or Redis refused: reconnect.
      this.log?.warn({ err: (err as Error).message }, 'restoring subscriptions failed');
      if (generation === this.subGeneration && this.sub.status === 'ready') this.sub.disconnect(true);
      return;
    }
    if (generation !== this.subGeneration || this.closed) return;
    this.subscribed = true;
    if (wanted.length > 2) this.log?.info({ channels: this.channels.size, users: this.users.size, gaps: this.gaps.size }, 'subscriptions restored');
    this.update();
    for (const channel of [...this.pendingLost]) this.emitLost(channel);
    for (const channel of this.gaps.keys()) void this.fill(channel);
  }

  /**
   * The subscriber connection is gone: every channel it carried has a gap from now on. History
   * channels are filled once it is back (live messages wait meanwhile); the others get `onLost`.
   */
  private onSubscriberClose(): void {
    if (this.subscribed) {
      for (const channel of this.channels) {
        const gap = this.gaps.get(channel);
        // Already being filled: what was buffered is read again from history after the reconnect.
        if (gap) gap.buffer = [];
        else if (this.lastSeen.has(channel) || this.baseline.has(channel)) this.gaps.set(channel, { buffer: [], running: false });
        else this.pendingLost.add(channel);
      }
      if (this.channels.size > 0) this.log?.warn({ channels: this.channels.size, history: this.gaps.size }, 'subscription interrupted; filling gaps on reconnect');
    }
    this.subscribed = false;
    this.update();
  }

  /**
   * Fills the gap of a history channel: the messages after the last one handed over, in offset
   * order, then the live ones that waited. Runs only while the broker is available (a fill before
   * the command connection is back would fail, issue 12) and retries until it succeeds, the
   * channel is unsubscribed or the broker closes.
   */
  private async fill(channel: string): Promise<void> {
    const gap = this.gaps.get(channel);
    if (!gap || gap.running) return;
    gap.running = true;
    try {
      let failed = false;
      while (this.gaps.get(channel) === gap && !this.closed) {
        if (failed) await new Promise((r) => setTimeout(r, this.options.gapRetryMs ?? 250).unref());
        failed = false;
        if (!this.availableNow) {
          await this.whenAvailable();
          continue;
        }
        try {
          if (await this.fillOnce(channel, gap)) return;
        } catch (err) {
          this.log?.warn({ err: (err as Error).message, channel }, 'gap fill failed; retrying');
        }
        failed = true;
      }
    } finally {
      gap.running = false;
    }
  }

  /** One attempt of {@link fill}; false when the subscription was interrupted again meanwhile. */
  private async fillOnce(channel: string, gap: Gap): Promise<boolean> {
    const generation = this.subGeneration;
    const since = this.lastSeen.get(channel) ?? this.baseline.get(channel);
    if (!since) {
      this.gaps.delete(channel);
      this.emitLost(channel);
      for (const m of gap.buffer) this.deliverHistory(m);
      return true;
    }
    let recovery: Recovery = await this.history.recover(channel, since);
    if (recovery.position.epoch !== since.epoch) {
      // A new epoch (Redis restarted empty, or the stream expired): its messages are all there,
      // so subscribers are brought onto it from its first offset instead of skipping them.
      recovery = { ...(await this.history.recover(channel, { offset: 0, epoch: recovery.position.epoch })), recovered: false };
    }
    if (this.gaps.get(channel) !== gap) return true; // unsubscribed meanwhile
    if (recovery.position.epoch === since.epoch && recovery.position.offset < since.offset) {
      // The stream went back under the same epoch: a replica promoted before it had the last
      // appends (Redis replication is asynchronous), or a restore from an older snapshot. The
      // offsets above the stream's end will be given to new messages, which must not be taken
      // for duplicates: start again from the end, and say that messages were lost.
      this.log?.warn({ channel, since, position: recovery.position }, 'messages lost: history went back (failover before replication)');
      this.lastSeen.set(channel, recovery.position);
      this.emitLost(channel, recovery.position);
    } else if (!recovery.recovered) {
      const first = recovery.messages[0]?.offset;
      const from = { offset: first === undefined ? recovery.position.offset : first - 1, epoch: recovery.position.epoch };
      this.log?.warn({ channel, since, from }, 'messages lost: history epoch changed or trimmed');
      this.lastSeen.set(channel, from);
      this.emitLost(channel, from);
    }
    for (const m of recovery.messages) this.hand(m);
    if (generation !== this.subGeneration || !this.subscribed) {
      gap.buffer = [];
      return false;
    }
    this.gaps.delete(channel);
    for (const m of gap.buffer) this.deliverHistory(m);
    return true;
  }

  /** Resolves once the broker is available (or closed). */
  private whenAvailable(): Promise<void> {
    if (this.availableNow || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.availabilityWaiters.delete(done);
        resolve();
      };
      this.availabilityWaiters.add(done);
    });
  }

  private emitLost(channel: string, position?: StreamPosition): void {
    this.pendingLost.delete(channel);
    if (!this.channels.has(channel)) return;
    try {
      this.handler?.onLost?.(channel, position);
    } catch (err) {
      this.log?.error({ err }, 'broker handler failed');
    }
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed) return;
    this.channels.add(channel);
    // Not connected: the channel is subscribed with the others on the next `ready`.
    if (this.sub.status !== 'ready') return;
    await this.sub.subscribe(this.keys.channel(channel)).catch((err: Error) => this.log?.debug({ err: err.message, channel }, 'subscribe failed; restored on reconnect'));
  }

  /**
   * Whether an UNSUBSCRIBE is worth sending now. One Redis forgets subscriptions with the
   * connection, so none is needed while it is down. On a cluster ioredis keeps every sharded
   * subscription and restores it after topology changes: SUNSUBSCRIBE even while interrupted,
   * or it would come back unwanted.
   */
  private get mayUnsubscribe(): boolean {
    return this.sub.status === 'ready' || this.keys.clustered;
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
    this.lastSeen.delete(channel);
    this.baseline.delete(channel);
    this.gaps.delete(channel);
    this.pendingLost.delete(channel);
    if (this.closed || !this.mayUnsubscribe) return;
    await this.sub.unsubscribe(this.keys.channel(channel)).catch(() => undefined);
  }

  async subscribeUser(user: string): Promise<void> {
    if (this.closed) return;
    this.users.add(user);
    if (this.sub.status !== 'ready') return;
    await this.sub.subscribe(this.keys.user(user)).catch((err: Error) => this.log?.debug({ err: err.message, user }, 'subscribe failed; restored on reconnect'));
  }

  async unsubscribeUser(user: string): Promise<void> {
    this.users.delete(user);
    if (this.closed || !this.mayUnsubscribe) return;
    await this.sub.unsubscribe(this.keys.user(user)).catch(() => undefined);
  }

  // ---- receiving -------------------------------------------------------------

  private onMessage(_channel: Buffer, message: Buffer): void {
    let env: Envelope;
    try {
      env = decodeEnvelope(message);
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'dropped an undecodable envelope');
      return;
    }
    // Own events without history were delivered here when published.
    if (env.node === this.nodeId && !(env.type === 'event' && env.position)) return;
    try {
      if (env.type === 'event') {
        const event = env.event;
        if (!this.channels.has(event.channel)) return;
        if (event.kind === 'message' && event.offset !== undefined) {
          this.deliverHistory(event);
        } else {
          if (this.pendingLost.has(event.channel)) this.emitLost(event.channel);
          this.handler?.onChannelEvent(event);
        }
      } else if (env.type === 'direct') {
        if (this.users.has(env.direct.user)) this.handler?.onDirect(env.direct);
      } else {
        this.handler?.onCommand(env.command);
      }
    } catch (err) {
      this.log?.error({ err }, 'broker handler failed');
    }
  }

  /**
   * A live history message: waits while its channel is being filled; one that does not follow
   * the last position (a hole — Redis ran a publish this node's subscription missed — or a new
   * epoch) starts a fill; otherwise it is handed over.
   */
  private deliverHistory(m: ChannelMessage): void {
    const gap = this.gaps.get(m.channel);
    if (gap) {
      gap.buffer.push(m);
      return;
    }
    const seen = this.lastSeen.get(m.channel);
    const ref = seen ?? this.baseline.get(m.channel);
    if (ref && (ref.epoch !== m.epoch || m.offset! > ref.offset + 1) && !(seen && seen.epoch === m.epoch && m.offset! <= seen.offset)) {
      this.log?.warn({ channel: m.channel, last: ref, offset: m.offset, epoch: m.epoch }, 'hole in the live stream; filling from history');
      this.gaps.set(m.channel, { buffer: [m], running: false });
      void this.fill(m.channel);
      return;
    }
    this.hand(m);
  }

  /** Hands a history message over unless this node already did (same epoch, offset not above the last). */
  private hand(m: ChannelMessage): void {
    if (!this.channels.has(m.channel)) return;
    const seen = this.lastSeen.get(m.channel);
    if (seen && seen.epoch === m.epoch && m.offset! <= seen.offset) return;
    this.lastSeen.set(m.channel, { offset: m.offset!, epoch: m.epoch! });
    this.baseline.delete(m.channel);
    this.handler?.onChannelEvent(m);
  }

  // ---- history ------------------------------------------------------------------

  async position(channel: string): Promise<StreamPosition> {
    const position = await this.history.position(channel);
    this.noteBaseline(channel, position);
    return position;
  }

  async recover(channel: string, since: StreamPosition): Promise<Recovery> {
    const recovery = await this.history.recover(channel, since);
    this.noteBaseline(channel, recovery.position);
    return recovery;
  }

  /**
   * A local subscriber read `position` of a subscribed channel (after the subscription was in
   * place): until a message is handed over, the lowest such read is where a gap fill starts.
   */
  private noteBaseline(channel: string, position: StreamPosition): void {
    if (!this.channels.has(channel) || this.lastSeen.has(channel) || this.gaps.has(channel)) return;
    const b = this.baseline.get(channel);
    if (!b || b.epoch !== position.epoch || position.offset < b.offset) this.baseline.set(channel, position);
  }

  // ---- sending ----------------------------------------------------------------

  async publish(event: ChannelEvent, history?: HistoryPolicy): Promise<StreamPosition | undefined> {
    const envelope = encodeEnvelope({ type: 'event', node: this.nodeId, event });
    if (event.kind === 'message' && history) {
      if (!this.canPublish) throw new BrokerUnavailableError('redis is unavailable');
      const timeout = this.options.commandTimeoutMs ?? 2000;
      const deadline = Date.now() + timeout - Math.min(500, timeout / 4);
      let reply: [number, string];
      try {
        reply = (await APPEND_AND_PUBLISH.on(this.keys.clustered).run(this.pub, appendArgs(this.keys, event.channel, envelope, history, this.epoch(), deadline))) as [number, string];
      } catch (err) {
        throw toUnavailable(err, 'history publish', this.log);
      }
      if (Number(reply[0]) < 0) throw new BrokerUnavailableError('redis ran the publish after its deadline and refused it');
      return { offset: Number(reply[0]), epoch: String(reply[1]) };
    }
    if (this.channels.has(event.channel)) {
      const handler = this.handler;
      queueMicrotask(() => handler?.onChannelEvent(event));
    }
    await this.send(this.keys.channel(event.channel), envelope, 'publish');
    return undefined;
  }

  async sendDirect(message: DirectMessage): Promise<void> {
    if (this.users.has(message.user)) {
      const handler = this.handler;
      queueMicrotask(() => handler?.onDirect(message));
    }
    await this.send(this.keys.user(message.user), encodeEnvelope({ type: 'direct', node: this.nodeId, direct: message }), 'direct message');
  }

  async command(command: AdminCommand): Promise<void> {
    const handler = this.handler;
    queueMicrotask(() => handler?.onCommand(command));
    await this.send(this.keys.broadcast, encodeEnvelope({ type: 'command', node: this.nodeId, command }), 'command');
  }

  /**
   * Sends a command to one node only, through its node channel (this node: locally). Resolves
   * with the number of receivers (0: no such node listens), 1 for this node.
   */
  async commandNode(node: string, command: AdminCommand): Promise<number> {
    if (node === this.nodeId) {
      const handler = this.handler;
      queueMicrotask(() => handler?.onCommand(command));
      return 1;
    }
    return this.send(this.keys.nodeChannel(node), encodeEnvelope({ type: 'command', node: this.nodeId, command }), 'command');
  }

  /** Publishes an envelope; resolves with the number of receivers Redis counted. */
  private async send(channel: string, envelope: Buffer, what: string): Promise<number> {
    if (!this.canPublish) throw new BrokerUnavailableError(`redis is unavailable; ${what} delivered on this node only`);
    try {
      return await this.pub.publish(channel, envelope);
    } catch (err) {
      throw toUnavailable(err, what, this.log);
    }
  }

  // ---- liveness -----------------------------------------------------------------

  private probing = false;

  /** PINGs both connections; one that does not answer in time is marked down and reconnected. */
  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    const check = async (client: RedisCommandClient | RedisSubscriberClient, role: 'publisher' | 'subscriber') => {
      if (client.status !== 'ready') return;
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([
        client.ping().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.probeTimeout))),
      ]);
      clearTimeout(timer);
      if (this.closed) return;
      const was = role === 'publisher' ? this.pubProbeOk : this.subProbeOk;
      if (role === 'publisher') this.pubProbeOk = ok;
      else this.subProbeOk = ok;
      if (was !== ok) this.log?.warn({ redis: role }, `redis ${role} probe: ${was ? 'ok' : 'failing'} -> ${ok ? 'ok' : 'failing'}`);
      this.update();
      // A connection that stopped answering is dropped and reopened; pending commands fail.
      if (!ok && client.status === 'ready') client.disconnect(true);
    };
    void Promise.all([check(this.pub, 'publisher'), check(this.sub, 'subscriber')]).finally(() => (this.probing = false));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.handler = undefined;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.update();
    for (const w of [...this.availabilityWaiters]) w();
    this.gaps.clear();
    this.channels.clear();
    this.users.clear();
    await Promise.all([quit(this.pub), quit(this.sub)]);
  }
}

/** QUIT (flushes pending replies) when connected, with a bounded wait; otherwise just disconnect. */
async function quit(client: RedisCommandClient | RedisSubscriberClient): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([client.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
  }
  client.disconnect(false);
}
