import type { StreamPosition } from '@herald/protocol';
import type { AdminCommand, Broker, BrokerHandler, ChannelEvent, ChannelMessage, DirectMessage, HistoryPolicy } from './broker.js';
import { newEpoch } from './memory-history.js';
import { toUnavailable, type RedisCommandClient, type RedisSubscriberClient } from './redis-client.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from './redis-envelope.js';
import { APPEND_AND_PUBLISH, appendArgs, type RedisHistory } from './redis-history.js';
import { RedisKeys, type Logger } from '@herald/shared';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /** This node's id: tags what it publishes, names its node channel. */
  nodeId: string;
  /** Prefix of every key and pub/sub channel. @default "herald:" */
  prefix?: string;
  /** Interval of the liveness probe (PING on both connections), in ms. @default 1000 */
  probeIntervalMs?: number;
  /** A PING without a reply after this long marks Redis unavailable and reconnects, in ms. @default 2000 */
  probeTimeoutMs?: number;
  /** `start()` waits at most this long for Redis before it resolves anyway (not ready), in ms. @default 3000 */
  startTimeoutMs?: number;
  /**
   * History reader used to fill the gap after the subscriber connection was lost: messages of
   * history channels published meanwhile are delivered in order once it is back. Optional.
   */
  history?: RedisHistory;
  /** Epoch generator for new history streams. @default random 8 characters */
  newEpoch?: () => string;
  log?: Logger;
}

/** Subscribe/unsubscribe at most this many channels per command when restoring. */
const RESUBSCRIBE_CHUNK = 1000;

/**
 * The cluster broker on Redis pub/sub (SPEC §5, docs/cluster.md).
 *
 * - One subscriber connection per worker with an exact SUBSCRIBE per channel that has local
 *   subscribers, per user with local connections, plus the node's own channel and the
 *   broadcast channel. Subscriptions are restored by the broker after every reconnect.
 * - Messages without history and presence events are delivered on this node at once and
 *   published tagged with the node id; the node drops its own when they come back. So local
 *   delivery goes on while Redis is down, and `publish` then rejects with
 *   {@link BrokerUnavailableError} after delivering locally: never a silent drop.
 * - History messages are appended and published by one Lua script and reach every node, this
 *   one included, through the subscription, so all nodes see a channel's messages in offset order.
 * - Every envelope is encoded once per publish and decoded once per receiving node.
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
  /** Last history position seen per subscribed channel (gap recovery, duplicate drop). */
  private readonly lastSeen = new Map<string, StreamPosition>();
  /** Channels being gap-recovered: live history messages wait here meanwhile. */
  private readonly recovering = new Map<string, ChannelMessage[]>();
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
    this.keys = new RedisKeys(options.prefix);
    this.log = options.log;
    this.epoch = options.newEpoch ?? newEpoch;
    this.probeInterval = options.probeIntervalMs ?? 1000;
    this.probeTimeout = options.probeTimeoutMs ?? 2000;
    // Whoever created the clients should log errors; this guarantees no `error` goes unhandled.
    this.pub.on('error', () => undefined);
    this.sub.on('error', () => undefined);
    this.pub.on('ready', () => {
      this.pubProbeOk = true;
      this.update();
    });
    for (const ev of ['close', 'end']) this.pub.on(ev, () => this.update());
    this.sub.on('ready', () => void this.onSubscriberReady());
    for (const ev of ['close', 'end']) {
      this.sub.on(ev, () => {
        this.subscribed = false;
        this.update();
      });
    }
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
    if (wanted.length > 2) this.log?.info({ channels: this.channels.size, users: this.users.size }, 'subscriptions restored');
    this.update();
    void this.fillGaps();
  }

  /** After a reconnect: delivers history messages the node missed while unsubscribed, in order. */
  private async fillGaps(): Promise<void> {
    const history = this.options.history;
    if (!history) return;
    for (const [channel, since] of [...this.lastSeen]) {
      if (!this.channels.has(channel) || this.recovering.has(channel)) continue;
      this.recovering.set(channel, []);
      try {
        const recovery = await history.recover(channel, since);
        for (const m of recovery.messages) this.deliverHistory(m);
        if (!recovery.recovered) this.log?.warn({ channel, since }, 'messages lost while the subscription was down');
      } catch (err) {
        this.log?.warn({ err: (err as Error).message, channel }, 'gap recovery failed');
      } finally {
        const buffered = this.recovering.get(channel) ?? [];
        this.recovering.delete(channel);
        for (const m of buffered) this.deliverHistory(m);
      }
    }
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed) return;
    this.channels.add(channel);
    // Not connected: the channel is subscribed with the others on the next `ready`.
    if (this.sub.status !== 'ready') return;
    await this.sub.subscribe(this.keys.channel(channel)).catch((err: Error) => this.log?.debug({ err: err.message, channel }, 'subscribe failed; restored on reconnect'));
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
    this.lastSeen.delete(channel);
    if (this.closed || this.sub.status !== 'ready') return;
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
    if (this.closed || this.sub.status !== 'ready') return;
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
          const buffer = this.recovering.get(event.channel);
          if (buffer) buffer.push(event);
          else this.deliverHistory(event);
        } else {
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

  /** Delivers a history message unless this node already delivered its offset. */
  private deliverHistory(m: ChannelMessage): void {
    const seen = this.lastSeen.get(m.channel);
    if (seen && seen.epoch === m.epoch && m.offset! <= seen.offset) return;
    if (this.channels.has(m.channel)) this.lastSeen.set(m.channel, { offset: m.offset!, epoch: m.epoch! });
    this.handler?.onChannelEvent(m);
  }

  // ---- sending ----------------------------------------------------------------

  async publish(event: ChannelEvent, history?: HistoryPolicy): Promise<StreamPosition | undefined> {
    const envelope = encodeEnvelope({ type: 'event', node: this.nodeId, event });
    if (event.kind === 'message' && history) {
      if (!this.canPublish) throw new BrokerUnavailableError('redis is unavailable');
      let reply: [number, string];
      try {
        reply = (await APPEND_AND_PUBLISH.run(this.pub, appendArgs(this.keys, event.channel, envelope, history, this.epoch()))) as [number, string];
      } catch (err) {
        throw toUnavailable(err, 'history publish', this.log);
      }
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

  /** Sends a command to one node only, through its node channel (this node: locally). */
  async commandNode(node: string, command: AdminCommand): Promise<void> {
    if (node === this.nodeId) {
      const handler = this.handler;
      queueMicrotask(() => handler?.onCommand(command));
      return;
    }
    await this.send(this.keys.nodeChannel(node), encodeEnvelope({ type: 'command', node: this.nodeId, command }), 'command');
  }

  private async send(channel: string, envelope: Buffer, what: string): Promise<void> {
    if (!this.canPublish) throw new BrokerUnavailableError(`redis is unavailable; ${what} delivered on this node only`);
    try {
      await this.pub.publish(channel, envelope);
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
