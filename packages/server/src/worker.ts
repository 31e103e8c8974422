import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, DEFAULT_MAX_JSON_DEPTH, ErrorCode, HttpErrorCode } from '@herald/protocol';
import type { Broker } from './broker.js';
import type { Presence } from './presence.js';
import { MemoryBroker } from './memory-broker.js';
import { MemoryPresence } from './memory-presence.js';
import { Hub } from './hub.js';
import { setTimeout as delay } from 'node:timers/promises';
import { Heartbeat } from './heartbeat.js';
import { Namespaces, type NamespaceOptions } from './namespaces.js';
import { DEFAULT_MAX_FRAMES_IN_FLIGHT, Session, type SessionDeps, type SessionLimits } from './session.js';
import { WsTransport } from './ws-transport.js';
import { handleEcho } from './echo.js';
import { closeWithGrace } from './close.js';
import { handleApi } from './api.js';
import { serveStatic } from './static-files.js';
import { Metrics } from './metrics.js';
import { Authenticator, selectProtocol } from './auth.js';
import { OriginPolicy } from './origin.js';
import { TokenBucket } from './rate-limit.js';
import { closeAtExpiry } from './token-expiry.js';
import { closeInBatches } from './drain.js';
import { answerPlainHttpOnTls, balancerTag, isBalancerId } from '@herald/shared';
import { BalancerConnections } from './balancer-connections.js';
import type { AdminCommand } from './broker.js';
import { sendJson } from './http-util.js';
import { DEFAULT_HTTP_FALLBACK, HttpFallback, type HttpFallbackOptions } from './http-fallback.js';
import { isForwardKind } from './http-forward.js';
import { IpConnectionLimit, clientAddress, createLogger, redactUrl, rejectUpgrade, sendError, TrustedProxies, type Logger, type TlsCredentials } from '@herald/shared';

/** Options of a {@link HeraldWorker}; every field has a default. */
export interface WorkerOptions {
  /** This node's id. @default "node" */
  nodeId?: string;
  /** Transport between nodes. @default a new MemoryBroker */
  broker?: Broker;
  /** Presence store. @default a new MemoryPresence */
  presence?: Presence;
  /** Options per namespace (`""` is the default namespace). @default {} */
  namespaces?: Record<string, Partial<NamespaceOptions>>;
  /** Authentication of upgrades. @default new Authenticator('none') */
  authenticator?: Authenticator;
  /** Key for `/api/*`; unset refuses every API call with 401. */
  apiKey?: string;
  /** Largest message in bytes; larger frames close the connection with 1009. @default 65536 */
  maxMessageBytes?: number;
  /** Protocol ping interval in ms. @default 25000 */
  heartbeatMs?: number;
  /** Graceful shutdown budget in ms. @default 10000 */
  drainMs?: number;
  /** Time to send complete upgrade/request headers, in ms. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Open WebSocket connections accepted; more get 503. @default 20000 */
  maxConnections?: number;
  /** Offer permessage-deflate (its inflated size is capped by maxMessageBytes). @default false */
  perMessageDeflate?: boolean;
  /** Per-connection limits. @default { sendBufferBytes: 1048576, maxSubscriptions: 1000, closeGraceMs: 5000, rate: DEFAULT_RATE_LIMITS, maxFramesInFlight: 64, maxJsonDepth: 64 } */
  limits?: Partial<SessionLimits>;
  /** Exact allowlist of `Origin` values for upgrades (others get 403); unset or empty allows all. */
  allowedOrigins?: string[];
  /** Open WebSocket connections per client address; more get 429. 0 = unlimited. @default 0 */
  maxConnectionsPerIp?: number;
  /** Addresses whose `X-Forwarded-For` names the client (the balancer). @default [] */
  trustedProxies?: string[];
  /** Upgrades accepted per second, worker-wide (burst of the same size); more get 503. 0 = unlimited. @default 1000 */
  maxUpgradesPerSec?: number;
  /** Fragments one message may have; more close the connection with 1008. @default 1024 */
  maxFragments?: number;
  /** Largest request/upgrade header block, in bytes; larger gets 431. @default 16384 */
  maxHeaderBytes?: number;
  /**
   * Certificate and key ({@link loadTlsCredentials}): the worker serves https and wss itself (a
   * lone worker without a proxy); reload them with `server.setSecureContext()`. @default undefined (plain HTTP)
   */
  tls?: TlsCredentials;
  /** Logger. @default pino at level "info" */
  log?: Logger;
  /** The HTTP fallback (`/sse`, `/poll`, `/emit`). @default DEFAULT_HTTP_FALLBACK, with the worker's heartbeatMs and closeGraceMs */
  http?: Partial<HttpFallbackOptions>;
}

/**
 * One Herald worker: an HTTP server with the WebSocket endpoints `/echo` and `/ws`, health,
 * metrics, the HTTP API and the demo app, on top of a broker, presence and history.
 */
export class HeraldWorker {
  readonly nodeId: string;
  readonly hub: Hub;
  readonly metrics = new Metrics();
  readonly server: Server;
  /** The HTTP fallback transports (SPEC §9): their sessions count as connections. */
  readonly http: HttpFallback;
  private readonly broker: Broker;
  private readonly presence: Presence;
  private readonly log: Logger;
  private readonly wss: WebSocketServer;
  private readonly heartbeat: Heartbeat;
  private readonly namespaces: Namespaces;
  private readonly authenticator: Authenticator;
  private readonly limits: SessionLimits;
  private readonly opts: Required<Pick<WorkerOptions, 'maxMessageBytes' | 'heartbeatMs' | 'drainMs' | 'handshakeTimeoutMs' | 'maxConnections'>> & WorkerOptions;
  private draining = false;
  /** Every open WebSocket (both endpoints), for the connection cap and shutdown. */
  private readonly sockets = new Set<WebSocket>();
  private readonly sessions = new Map<WebSocket, Session>();
  /** Open WebSockets by the balancer instance they came through (`X-Herald-Balancer`). */
  private readonly viaBalancer = new BalancerConnections<WebSocket>();
  private drained?: Promise<void>;
  private readonly origins: OriginPolicy;
  private readonly ipLimit: IpConnectionLimit;
  private readonly trusted: TrustedProxies;
  private readonly upgrades: TokenBucket;
  /** What every session needs of this worker: one object shared by all sessions. */
  private sessionDeps?: SessionDeps;
  // Listeners shared by every socket (an emitter calls them with `this` = the socket), so an
  // idle connection carries no closures of its own (memory per connection, docs/benchmarks.md).
  private readonly onSocketClose: (this: WebSocket) => void;
  private readonly onUpgradeSocketError: (this: Duplex, err: Error) => void;

  constructor(options: WorkerOptions = {}) {
    this.opts = { maxMessageBytes: 65_536, heartbeatMs: 25_000, drainMs: 10_000, handshakeTimeoutMs: 10_000, maxConnections: 20_000, ...options };
    this.nodeId = options.nodeId ?? 'node';
    this.log = options.log ?? createLogger('info', { node: this.nodeId });
    this.broker = options.broker ?? new MemoryBroker();
    this.presence = options.presence ?? new MemoryPresence();
    this.namespaces = new Namespaces(options.namespaces);
    this.authenticator = options.authenticator ?? new Authenticator('none');
    this.limits = {
      sendBufferBytes: 1024 * 1024,
      maxSubscriptions: 1000,
      closeGraceMs: 5000,
      maxMessageBytes: this.opts.maxMessageBytes,
      maxFramesInFlight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
      maxJsonDepth: DEFAULT_MAX_JSON_DEPTH,
      ...options.limits,
    };
    this.origins = new OriginPolicy(options.allowedOrigins);
    this.ipLimit = new IpConnectionLimit(options.maxConnectionsPerIp ?? 0);
    this.trusted = new TrustedProxies(options.trustedProxies ?? []);
    const upgradesPerSec = options.maxUpgradesPerSec ?? 1000;
    this.upgrades = new TokenBucket(upgradesPerSec, upgradesPerSec);
    this.hub = new Hub(this.broker, this.log);
    this.heartbeat = new Heartbeat(this.opts.heartbeatMs);
    this.http = new HttpFallback(
      {
        nodeId: this.nodeId,
        broker: this.broker,
        authenticator: this.authenticator,
        origins: this.origins,
        upgrades: this.upgrades,
        ipLimit: this.ipLimit,
        trusted: this.trusted,
        sessionDeps: () => this.deps(),
        hasRoom: () => this.sockets.size + this.http.size < this.opts.maxConnections,
        draining: () => this.draining,
        maxMessageBytes: this.opts.maxMessageBytes,
        log: this.log,
      },
      { ...DEFAULT_HTTP_FALLBACK, heartbeatMs: this.opts.heartbeatMs, closeGraceMs: this.limits.closeGraceMs, ...options.http },
    );
    const { sockets, sessions, viaBalancer, log } = this;
    this.onSocketClose = function (this: WebSocket) {
      sockets.delete(this);
      sessions.delete(this);
      viaBalancer.remove(this);
    };
    this.onUpgradeSocketError = function (err: Error) {
      log.debug({ err }, 'upgrade socket error');
    };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.opts.maxMessageBytes,
      perMessageDeflate: options.perMessageDeflate ? { threshold: 1024 } : false,
      clientTracking: false,
      maxFragments: options.maxFragments ?? 1024,
      handleProtocols: selectProtocol,
    });
    this.wss.on('error', (err) => this.log.error({ err }, 'websocket server error'));
    const serverOptions = { maxHeaderSize: options.maxHeaderBytes ?? 16_384, requestTimeout: this.opts.handshakeTimeoutMs, headersTimeout: this.opts.handshakeTimeoutMs, connectionsCheckingInterval: Math.min(1000, this.opts.handshakeTimeoutMs) };
    if (options.tls) {
      // https.Server is an http.Server on TLS sockets: every route and the upgrade path stay the same.
      const tlsServer = createHttpsServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key, handshakeTimeout: this.opts.handshakeTimeoutMs });
      // Plain HTTP on the TLS port is told so (400), not answered with an empty reply.
      answerPlainHttpOnTls(tlsServer, this.opts.handshakeTimeoutMs);
      this.server = tlsServer;
      // A failed handshake (an untrusted certificate, garbage) concerns that client only.
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException) => this.log.debug({ code: err.code, err: err.message }, 'TLS handshake failed'));
    } else {
      this.server = createServer(serverOptions);
    }
    this.server.on('request', (req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => this.onClientError(err, socket));
    // Before it listens, an error (EADDRINUSE, EACCES) is listen()'s rejection, reported once by its caller.
    this.server.on('error', (err) => {
      if (this.server.listening) this.log.error({ err }, 'http server error');
    });
  }

  /** True while the worker accepts connections and the broker is available. */
  get ready(): boolean {
    return !this.draining && this.server.listening && this.broker.available;
  }

  /** Starts the broker, then listens. Resolves with the bound port. */
  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    await this.broker.start({
      onChannelEvent: (event) => this.hub.deliver(event),
      onDirect: (message) => this.hub.deliverDirect(message),
      onCommand: (command) => this.onCommand(command),
      onLost: (channel, position) => this.hub.lost(channel, position),
      onAvailability: (available) => {
        this.metrics.brokerUp.set(available ? 1 : 0);
        this.log[available ? 'info' : 'warn']({ available }, available ? 'broker available' : 'broker unavailable');
      },
    });
    this.metrics.brokerUp.set(this.broker.available ? 1 : 0);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  /** Carries out an admin command from the broker (fields are checked: it came over the network). */
  private onCommand(command: AdminCommand): void {
    if (isForwardKind(command.kind)) return this.http.onForward(command);
    if (command.kind === 'disconnect' && typeof command.user === 'string') {
      const n = this.hub.disconnectUser(command.user, CloseCode.Policy, 'disconnected by admin');
      this.log.info({ user: command.user, connections: n }, 'admin disconnect');
    } else if (command.kind === 'drain-balancer' && typeof command.balancer === 'string' && isBalancerId(command.balancer)) {
      const spread = typeof command.spreadMs === 'number' && command.spreadMs >= 0 ? command.spreadMs : this.opts.drainMs / 2;
      this.drainBalancer(command.balancer, Math.min(spread, this.opts.drainMs));
    } else {
      this.log.warn({ kind: String((command as { kind?: unknown }).kind).slice(0, 50) }, 'ignoring a malformed admin command');
    }
  }

  /**
   * Closes the connections that came through `balancer` with 1001, paced like the worker's own
   * drain: that balancer is shutting down and waits for its tunnels to end, so its clients
   * reconnect (through another balancer, or the restarted one) gradually and never see 1006.
   */
  private drainBalancer(balancer: string, spreadMs: number): void {
    const sockets = this.viaBalancer.of(balancer);
    const targets = [...sockets.map((ws) => this.sessions.get(ws) ?? ws), ...this.http.viaBalancer.of(balancer)];
    this.log.info({ balancer, connections: targets.length, spreadMs }, 'draining the connections of a balancer');
    if (targets.length === 0) return;
    closeInBatches(targets, { code: CloseCode.GoingAway, reason: 'balancer going away', spreadMs }).catch((err: unknown) =>
      this.log.error({ err }, 'balancer drain failed'),
    );
  }

  /** Open WebSocket connections per balancer id they came through (untagged ones are not counted). */
  connectionsByBalancer(): Record<string, number> {
    return this.viaBalancer.counts();
  }

  /**
   * Replaces the certificate and key of a worker started with `tls`: new handshakes get them,
   * open connections keep theirs (SIGHUP in the bin, see reloadTlsOnSighup).
   *
   * @throws Error when the worker serves plain HTTP
   */
  setSecureContext(credentials: TlsCredentials): void {
    if (!this.opts.tls) throw new Error('this worker serves plain HTTP (no tls option)');
    (this.server as unknown as HttpsServer).setSecureContext(credentials);
  }

  /** The bound port (after {@link listen}). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  // ---- HTTP --------------------------------------------------------------

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((err) => {
      this.log.error({ err, url: redactUrl(req.url) }, 'request failed');
      sendError(res, 500, ErrorCode.Internal, 'internal error');
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    switch (url.pathname) {
      case '/healthz':
        return sendJson(res, 200, { ok: true, node: this.nodeId });
      case '/readyz': {
        if (this.ready) return sendJson(res, 200, { ready: true, node: this.nodeId });
        const reason = this.draining ? 'draining' : !this.broker.available ? 'broker unavailable' : 'starting';
        return sendJson(res, 503, { ready: false, node: this.nodeId, reason });
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        return void res.end(await this.metrics.registry.metrics());
    }
    if (await this.http.handle(req, res, url)) return;
    const api = { apiKey: this.opts.apiKey, broker: this.broker, presence: this.presence, namespaces: this.namespaces, metrics: this.metrics, maxBodyBytes: this.opts.maxMessageBytes + 1024, maxJsonDepth: this.limits.maxJsonDepth };
    if (await handleApi(req, res, url, api)) return;
    if (req.method === 'GET' || req.method === 'HEAD') {
      let served = false;
      try {
        served = await serveStatic(url.pathname, res);
      } catch (err) {
        if (!(err instanceof URIError)) throw err;
      }
      if (served) return;
    }
    sendError(res, 404, ErrorCode.NotFound, 'not found');
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // Garbage before the upgrade, oversized or slow headers: answer if we can, then drop.
    this.log.debug({ code: err.code }, 'client error');
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    if (err.code === 'HPE_HEADER_OVERFLOW') rejectUpgrade(socket, 431, HttpErrorCode.TooLarge, 'request headers too large');
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') rejectUpgrade(socket, 408, HttpErrorCode.RequestTimeout, 'request headers too slow');
    else rejectUpgrade(socket, 400, HttpErrorCode.BadRequest, 'bad request');
  }

  // ---- upgrades ----------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // The closures below live as long as the socket: they must not capture `req` (about 1 KB
    // per connection; docs/benchmarks.md), so only the redacted path is kept.
    const path = redactUrl(req.url);
    socket.on('error', this.onUpgradeSocketError);
    this.upgrade(req, socket, head).catch((err) => {
      this.log.error({ err, url: path }, 'upgrade failed');
      rejectUpgrade(socket, 500, HttpErrorCode.Internal, 'internal error');
    });
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws' && url.pathname !== '/echo') return rejectUpgrade(socket, 404, HttpErrorCode.NotFound, 'no WebSocket endpoint here');
    if (this.draining) return rejectUpgrade(socket, 503, HttpErrorCode.ShuttingDown, 'draining', { 'Retry-After': '1' });
    // Cheap checks first: a refused upgrade costs no token verification.
    if (!this.origins.allows(req.headers.origin)) {
      this.log.debug({ origin: String(req.headers.origin).slice(0, 200) }, 'upgrade refused: origin not allowed');
      return rejectUpgrade(socket, 403, HttpErrorCode.Forbidden, 'origin not allowed');
    }
    if (!this.upgrades.take()) return rejectUpgrade(socket, 503, HttpErrorCode.RateLimited, 'too many upgrades, retry', { 'Retry-After': '1' });
    if (this.sockets.size + this.http.size >= this.opts.maxConnections) {
      return rejectUpgrade(socket, 503, HttpErrorCode.OverCapacity, 'too many connections', { 'Retry-After': '5' });
    }
    if (this.ipLimit.max > 0) {
      // Without a cap there is nothing to count (and no closure to keep per connection).
      const ip = clientAddress(req, this.trusted);
      if (!this.ipLimit.acquire(ip)) return rejectUpgrade(socket, 429, HttpErrorCode.TooManyConnections, 'too many connections from this address', { 'Retry-After': '5' });
      // The slot is held until the TCP connection ends, whatever happens in between.
      socket.once('close', () => this.ipLimit.release(ip));
    }
    const auth = await this.authenticator.fromRequest(req, url);
    if (!auth.ok) {
      this.log.debug({ url: redactUrl(req.url), status: auth.status, reason: auth.message }, 'upgrade refused');
      if (!auth.closeAfterUpgrade || socket.destroyed) return rejectUpgrade(socket, auth.status, auth.status === 401 ? HttpErrorCode.Unauthorized : HttpErrorCode.BadRequest, auth.message, auth.headers);
      const reason = auth.message.slice(0, 120); // a close reason holds at most 123 bytes
      return this.wss.handleUpgrade(req, socket, head, (ws) => closeWithGrace(ws, CloseCode.Unauthorized, reason, this.limits.closeGraceMs));
    }
    if (socket.destroyed) return;
    const balancer = balancerTag(req);
    if (url.pathname === '/echo') {
      // /echo has no frames to authenticate with: in mode `required` its token must come with the upgrade.
      if (auth.awaitingAuth) return rejectUpgrade(socket, 401, HttpErrorCode.Unauthorized, 'a token is required', { 'WWW-Authenticate': 'Bearer realm="herald"' });
      return this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.track(ws, balancer);
        handleEcho(ws, socket as Socket, { sendBufferBytes: this.limits.sendBufferBytes, closeGraceMs: this.limits.closeGraceMs, log: this.log, metrics: this.metrics });
        closeAtExpiry(ws, auth.identity.expiresAt);
      });
    }
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.track(ws, balancer);
      // `socket` is the upgrade's TCP/TLS socket, the one ws writes to (for write coalescing).
      const transport = new WsTransport(ws, socket as Socket, this.limits.closeGraceMs);
      const session = new Session(transport, auth.identity, this.deps(), { awaitingAuth: auth.awaitingAuth });
      this.sessions.set(ws, session); // removed by onSocketClose
      session.start();
    });
  }

  /** What every session needs of this worker: one object, made on first use, shared by all sessions. */
  private deps(): SessionDeps {
    return (this.sessionDeps ??= {
      node: this.nodeId,
      heartbeatMs: this.opts.heartbeatMs,
      hub: this.hub,
      broker: this.broker,
      presence: this.presence,
      history: this.broker,
      namespaces: this.namespaces,
      limits: this.limits,
      metrics: this.metrics,
      log: this.log,
      auth: this.authenticator,
    });
  }

  private track(ws: WebSocket, balancer: string | undefined): void {
    this.sockets.add(ws);
    if (balancer !== undefined) this.viaBalancer.add(ws, balancer);
    // `on`, not `once` (which wraps each listener): `close` fires once anyway.
    ws.on('close', this.onSocketClose);
    this.heartbeat.track(ws);
  }

  // ---- shutdown ----------------------------------------------------------

  /**
   * Graceful shutdown: readiness turns false, new upgrades get 503, clients are closed with
   * 1001 in paced batches over about half the drain budget, then the broker and presence
   * are closed. Resolves when done (at most `drainMs` plus a little).
   */
  drain(): Promise<void> {
    this.drained ??= this.runDrain();
    return this.drained;
  }

  private async runDrain(): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + this.opts.drainMs;
    const sockets = [...this.sockets];
    this.log.info({ connections: sockets.length, drainMs: this.opts.drainMs }, 'draining');
    const allClosed = Promise.all(sockets.map((ws) => new Promise((resolve) => (ws.readyState === ws.CLOSED ? resolve(0) : ws.once('close', resolve)))));
    const httpClosed = this.http.allClosed();
    const targets = [...sockets.map((ws) => this.sessions.get(ws) ?? ws), ...this.http.all()];
    await closeInBatches(targets, { code: CloseCode.GoingAway, reason: 'going away', spreadMs: this.opts.drainMs / 2 });
    // Peers get until shortly before the deadline to answer the close frames (HTTP sessions: fetch them).
    await Promise.race([Promise.all([allClosed, httpClosed]), delay(Math.max(0, deadline - Date.now() - 500), undefined, { ref: false })]);
    for (const ws of this.sockets) ws.terminate();
    this.http.closeAll();
    this.heartbeat.stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.presence.close().catch((err) => this.log.warn({ err }, 'presence close failed'));
    await this.broker.close().catch((err) => this.log.warn({ err }, 'broker close failed'));
    this.log.info({ ms: this.opts.drainMs - (deadline - Date.now()) }, 'drained');
  }

  /** Closes everything at once (tests, fatal errors): terminates sockets without 1001. */
  async close(): Promise<void> {
    this.draining = true;
    this.heartbeat.stop();
    for (const ws of this.sockets) ws.terminate();
    this.http.closeAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.presence.close().catch(() => undefined);
    await this.broker.close().catch(() => undefined);
  }
}
