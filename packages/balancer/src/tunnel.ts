import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { destroyLater, rejectUpgrade, type Logger } from '@herald/shared';
import type { Worker } from './worker-pool.js';
import { HandshakeTimeoutError, errorCode, isConnectError } from './upstream-errors.js';
import { HALF_CLOSE_LINGER_MS, type Relay, type RelayEnd } from './data-plane.js';

/** What a tunnel needs from the balancer. */
export interface TunnelContext {
  /** Starts `http-proxy`'s WebSocket pass towards `worker`; errors come back through `onError`. */
  proxyWs(req: IncomingMessage, socket: Socket, head: Buffer, worker: Worker, onError: (error: Error) => void): void;
  /** Passive marking: the worker could not be reached. */
  markDown(worker: Worker, reason: string): void;
  /** Something odd happened with the worker (refused upgrade, reset): check its health now. */
  checkSoon(worker: Worker): void;
  /**
   * The tunnel has ended — its client socket closed or, once handed over, the relay reported the
   * end; called exactly once per tunnel, and every counter is released here and only here.
   */
  closed(tunnel: Tunnel): void;
  /** Where open tunnels are handed over; undefined = bytes stay on http-proxy's stream pipes. */
  readonly relay: Relay | undefined;
  readonly handshakeTimeoutMs: number;
  /** Open tunnels without traffic for this long are closed; 0 = never (the relay applies its own copy). */
  readonly tunnelIdleMs: number;
  readonly logger: Logger;
}

/** `relayed`: open, with both sockets handed over to the relay (the Node sockets are gone). */
type Phase = 'connecting' | 'open' | 'relayed' | 'closed';

const EMPTY = Buffer.alloc(0);
let nextId = 1;

/**
 * One proxied WebSocket connection: the client socket, the pending upgrade request to a worker,
 * then the worker socket. It exists to fix what `http-proxy` leaves open (it `end()`s sockets
 * instead of destroying them and never aborts the upstream request when the client goes away):
 * whichever side closes or fails, both sockets are destroyed and every counter is released once,
 * on the client socket's `close`. Once open, it hands its sockets to the native relay when there
 * is one (see `handOver`); the relay's end report then takes the place of that `close`.
 */
export class Tunnel {
  /** Process-unique id, for logs. */
  readonly id = nextId++;
  /** The worker currently serving (or being tried). */
  worker: Worker | undefined;
  private phase: Phase = 'connecting';
  private attempt = 0;
  private pending: ClientRequest | undefined;
  private upstream: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private responded = false;
  /** Refused at shutdown ({@link Tunnel.refuse}): whatever the worker does next is ignored. */
  private refused = false;
  /** The relay's id, once handed over: from then on only the relay's report releases the tunnel. */
  private relayId: number | undefined;

  /**
   * @param req - the upgrade request (X-Forwarded headers already set)
   * @param client - the client socket (an `error` listener is already attached)
   * @param head - bytes that arrived after the request head
   * @param ip - the client address (for the per-IP counter)
   * @param candidates - workers to try in order (rendezvous ranking, first = owner of the key)
   * @param ctx - balancer hooks
   */
  constructor(
    readonly req: IncomingMessage,
    readonly client: Socket,
    private readonly head: Buffer,
    readonly ip: string,
    private readonly candidates: readonly Worker[],
    private readonly ctx: TunnelContext,
  ) {}

  /** Whether the WebSocket is established end to end. */
  get open(): boolean {
    return this.phase === 'open' || this.phase === 'relayed';
  }

  /** Starts proxying to the first candidate. */
  start(): void {
    this.client.once('close', () => this.onClientClose());
    // Node hands an upgrade's socket over not reading (`readableFlowing = null`), so a client that
    // resets right after its request would go unnoticed — holding the request to the worker and
    // two descriptors — until the handshake timeout (issue 12). A `readable` listener makes the
    // socket read into its own buffer (nothing is consumed: http-proxy's pipe or the relay's
    // hand-over takes those bytes later), so a reset surfaces at once as `error` + `close`.
    this.client.on('readable', keepReading);
    this.client.once('end', onEndWhileConnecting);
    this.tryWorker();
  }

  /** The handshake is over (upgraded or refused): the bytes are http-proxy's from here. */
  private stopWatchingClient(): void {
    this.client.off('readable', keepReading);
    this.client.off('end', onEndWhileConnecting);
  }

  /** Tears the tunnel down now (both sockets destroyed). */
  destroy(): void {
    if (this.phase === 'relayed') {
      this.ctx.relay!.close(this.relayId!);
      return;
    }
    this.client.destroy();
    this.upstream?.destroy();
    this.abortPending();
  }

  /**
   * At shutdown: an upgrade still waiting for its worker is answered 503 `shutting_down` and its
   * request to the worker aborted — it would otherwise open after the workers were asked to
   * drain this balancer's connections, and be cut at the end of the drain. Open tunnels and
   * upgrades the worker already answered are left alone.
   */
  refuse(): void {
    if (this.phase !== 'connecting' || this.responded) return;
    this.refused = true;
    clearTimeout(this.timer);
    this.abortPending();
    rejectUpgrade(this.client, 503, 'shutting_down', 'the balancer is shutting down');
  }

  /**
   * Called by the balancer from `http-proxy`'s `proxyReqWs` event with the upgrade request just
   * created for this tunnel.
   *
   * @param proxyReq - the request to the worker
   */
  attach(proxyReq: ClientRequest): void {
    this.pending = proxyReq;
    if (this.phase === 'closed' || this.refused) {
      this.abortPending();
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onHandshakeTimeout(), this.ctx.handshakeTimeoutMs);
    this.timer.unref();
    // Registered before http-proxy's own listeners (proxyReqWs fires first), so the tunnel knows
    // the outcome before bytes move.
    proxyReq.on('upgrade', (_res: IncomingMessage, socket: Socket) => this.onUpgrade(socket));
    proxyReq.on('response', (res: IncomingMessage) => this.onRefused(res));
    // A worker answering the upgrade 503 (draining, or at its connection limit) has had nothing
    // written to the client yet, so — like nginx's `proxy_next_upstream http_503` — the next
    // worker in the ranking takes the upgrade. Passed on, the 503 makes the client back off, and
    // the clients a drain closed come back in a bunch instead of at the drain's pace (issue 12.5,
    // herald-bench deploy). http-proxy writes the answer from its own `response` listener, which
    // removing listeners during the emit cannot stop, so the event is taken before any listener
    // sees it; the abandoned request's later events are dropped too.
    let abandoned = false;
    const emit = proxyReq.emit;
    proxyReq.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (abandoned) return event === 'close' ? emit.call(proxyReq, event, ...args) : true;
      if (event === 'response' && this.nextOn503(args[0] as IncomingMessage)) {
        abandoned = true;
        return true;
      }
      return emit.call(proxyReq, event, ...args);
    }) as ClientRequest['emit'];
  }

  /**
   * Whether the worker's answer `res` to the upgrade is a 503 that the next candidate takes over
   * (then it is started here); false leaves the answer to http-proxy and {@link onRefused}.
   */
  private nextOn503(res: IncomingMessage): boolean {
    if (res.statusCode !== 503 || this.refused || this.phase !== 'connecting' || this.attempt + 1 >= this.candidates.length || !this.client.writable) return false;
    clearTimeout(this.timer);
    this.pending = undefined;
    res.on('error', () => undefined);
    res.resume();
    const worker = this.worker;
    if (worker) this.ctx.checkSoon(worker);
    this.ctx.logger.debug({ tunnel: this.id, worker: worker?.address }, 'worker answered the upgrade 503, trying the next worker');
    this.attempt += 1;
    this.tryWorker();
    return true;
  }

  /**
   * Abandons the upgrade request to the worker (the client went away, or the balancer refused the
   * upgrade) with a TCP reset rather than a FIN. A worker holding the upgrade — still checking a
   * token, or slow — does not read its socket, and Node's HTTP server keeps a half-closed socket
   * open (allowHalfOpen): after a FIN it would hold the request and its descriptor until it
   * answered. The reset frees it at once (issue 12: a client that resets right after its upgrade
   * left one upstream request held in about half the runs of test/balancer-reset.test.ts, the
   * one whose request had reached the worker before the client's reset was seen).
   * A request that has no socket yet is destroyed before it connects.
   */
  private abortPending(): void {
    const req = this.pending;
    this.pending = undefined;
    if (!req) return;
    const socket = req.socket;
    // resetAndDestroy() on a socket still connecting resets it once connected; destroyed ones throw nothing.
    if (socket && !socket.destroyed) socket.resetAndDestroy();
    req.destroy();
  }

  private tryWorker(): void {
    const worker = this.candidates[this.attempt]!;
    this.setWorker(worker);
    // The head was unshifted back into the client socket by the first attempt; passing it again
    // would duplicate those bytes.
    const head = this.attempt === 0 ? this.head : EMPTY;
    this.ctx.proxyWs(this.req, this.client, head, worker, (error) => this.onProxyError(error));
  }

  private setWorker(worker: Worker | undefined): void {
    if (this.worker) this.worker.connections -= 1;
    this.worker = worker;
    if (worker) worker.connections += 1;
  }

  private onUpgrade(socket: Socket): void {
    clearTimeout(this.timer);
    this.stopWatchingClient();
    this.pending = undefined;
    this.upstream = socket;
    socket.on('error', (error) => {
      this.ctx.logger.debug({ tunnel: this.id, worker: this.worker?.address, err: errorCode(error) }, 'worker socket error');
    });
    socket.once('close', () => {
      // The worker went away (closed, crashed, killed): flush what it sent, then drop the client.
      if (this.phase === 'closed' || this.phase === 'relayed') return;
      this.client.end();
      destroyLater(this.client, HALF_CLOSE_LINGER_MS);
    });
    if (this.phase === 'closed' || this.refused) {
      socket.destroy();
      return;
    }
    this.phase = 'open';
    if (this.ctx.tunnelIdleMs > 0) {
      // Every byte either way passes the client socket, so its inactivity timer is the tunnel's.
      this.client.setTimeout(this.ctx.tunnelIdleMs, () => {
        this.ctx.logger.debug({ tunnel: this.id, worker: this.worker?.address, idleMs: this.ctx.tunnelIdleMs }, 'idle tunnel closed');
        this.destroy();
      });
    }
    // http-proxy's own `upgrade` listener runs next: it writes the 101 to the client and pipes
    // the sockets. The hand-over waits for that, and runs before the pipes' first data.
    if (this.ctx.relay) process.nextTick(() => this.handOver(this.ctx.relay!));
  }

  /**
   * Moves an open tunnel's bytes off the Node sockets to the relay: unpipes, takes what the
   * sockets had already read, hands both descriptors over and destroys the Node sockets. A
   * socket still flushing a write (the 101 to a client that is slow to read) is waited for; if
   * the relay cannot take the tunnel (too many open files), the tunnel stays on the stream pipes.
   */
  private handOver(relay: Relay): void {
    const { client } = this;
    const upstream = this.upstream!;
    if (this.phase !== 'open' || client.destroyed || upstream.destroyed) return;
    if (client.writableLength > 0 || upstream.writableLength > 0) {
      // Writes complete in order, so an empty write's callback means everything before it left.
      (client.writableLength > 0 ? client : upstream).write(EMPTY, () => this.handOver(relay));
      return;
    }
    client.unpipe(upstream);
    upstream.unpipe(client);
    const toWorker = takeBuffered(client);
    const toClient = takeBuffered(upstream);
    try {
      this.relayId = relay.add(client, upstream, toClient, toWorker, (end, errno) => this.onRelayClosed(end, errno));
    } catch (error) {
      this.ctx.logger.warn({ tunnel: this.id, err: (error as Error).message }, 'relay refused the tunnel; it stays on stream pipes');
      if (toWorker) upstream.write(toWorker);
      if (toClient) client.write(toClient);
      upstream.pipe(client).pipe(upstream);
      return;
    }
    this.phase = 'relayed';
    client.destroy();
    upstream.destroy();
  }

  private onRelayClosed(end: RelayEnd, errno: number): void {
    this.ctx.logger.debug({ tunnel: this.id, worker: this.worker?.address, end, errno }, 'relayed tunnel closed');
    if (end === 'worker' && errno !== 0 && this.worker) this.ctx.checkSoon(this.worker);
    this.phase = 'closed';
    this.setWorker(undefined);
    this.ctx.closed(this);
  }

  private onRefused(res: IncomingMessage): void {
    if (this.refused) return;
    // The worker answered without upgrading (401, 403, 503 while draining, …). http-proxy pipes
    // that answer to the client and end()s the socket; the balancer destroys it once flushed.
    this.responded = true;
    this.stopWatchingClient();
    res.on('error', () => this.destroy());
    this.client.once('finish', () => this.client.destroy());
    destroyLater(this.client, this.ctx.handshakeTimeoutMs);
    if (this.worker && res.statusCode === 503) this.ctx.checkSoon(this.worker);
    this.ctx.logger.debug({ tunnel: this.id, worker: this.worker?.address, status: res.statusCode }, 'worker refused the upgrade');
  }

  private onHandshakeTimeout(): void {
    if (this.phase !== 'connecting') return;
    if (this.responded) {
      this.destroy();
      return;
    }
    this.pending?.destroy(new HandshakeTimeoutError(`worker did not answer the upgrade within ${this.ctx.handshakeTimeoutMs} ms`));
  }

  private onProxyError(error: Error): void {
    const worker = this.worker;
    if (this.phase === 'closed' || this.phase === 'relayed' || this.refused) return;
    if (this.phase === 'open') {
      // Mid-stream failure (ECONNRESET from a killed worker, …): this connection ends, others don't.
      this.ctx.logger.debug({ tunnel: this.id, worker: worker?.address, err: errorCode(error) }, 'tunnel failed');
      if (worker) this.ctx.checkSoon(worker);
      this.destroy();
      return;
    }
    clearTimeout(this.timer);
    this.pending = undefined;
    const code = errorCode(error);
    if (worker) {
      if (isConnectError(error)) this.ctx.markDown(worker, code);
      else this.ctx.checkSoon(worker);
    }
    const timedOut = error instanceof HandshakeTimeoutError;
    // Nothing has been written to the client yet and an upgrade is a body-less GET, so the next
    // worker in the ranking can take it — the same idea as nginx's proxy_next_upstream.
    if (!timedOut && !this.responded && this.attempt + 1 < this.candidates.length && this.client.writable) {
      this.ctx.logger.debug({ tunnel: this.id, worker: worker?.address, err: code }, 'upgrade failed, trying the next worker');
      this.attempt += 1;
      suppressNextEnd(this.client);
      this.tryWorker();
      return;
    }
    this.ctx.logger.debug({ tunnel: this.id, worker: worker?.address, err: code }, 'upgrade failed');
    if (this.responded) this.destroy();
    else if (timedOut) rejectUpgrade(this.client, 504, 'gateway_timeout', 'the worker did not answer the upgrade in time');
    else rejectUpgrade(this.client, 502, 'bad_gateway', `the worker failed the upgrade (${code})`);
  }

  private onClientClose(): void {
    // A relayed tunnel's Node socket closes at the hand-over; the relay reports the real end
    // (possibly before this event: the two arrive through different libuv phases).
    if (this.relayId !== undefined) return;
    this.phase = 'closed';
    clearTimeout(this.timer);
    this.abortPending();
    this.upstream?.destroy();
    this.setWorker(undefined);
    this.ctx.closed(this);
  }
}

/** `readable` listener of a client socket during the handshake: only there to keep it reading. */
function keepReading(): void {}

/**
 * A client that half-closes before the worker answered can never take part in a WebSocket
 * session (it could not even send its close frame): the handshake is abandoned, like a reset.
 */
function onEndWhileConnecting(this: Socket): void {
  this.destroy();
}

/** Bytes a socket has read that nobody consumed yet (the socket is paused first). */
function takeBuffered(socket: Socket): Buffer | undefined {
  socket.pause();
  if (socket.readableLength === 0) return undefined;
  const chunks: Buffer[] = [];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) chunks.push(chunk);
  return chunks.length > 0 ? Buffer.concat(chunks) : undefined;
}

/**
 * http-proxy's WebSocket pass calls `socket.end()` on the client right after reporting an
 * upstream error (ws-incoming.js, `onOutgoingError`), which would close a socket the balancer is
 * about to retry on another worker. This swallows exactly that one call. http-proxy 1.18.1 is
 * the last release, so the behaviour relied on is fixed.
 */
function suppressNextEnd(socket: Socket): void {
  const original = socket.end;
  socket.end = function suppressedEnd(this: Socket) {
    socket.end = original;
    return this;
  } as Socket['end'];
}
