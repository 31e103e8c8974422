import { answerPlainHttpOnTls, redactUrl, type Logger, clientAddress, IpConnectionLimit, destroyLater, rejectUpgrade, sendError, loadTlsCredentials, type TlsCredentials } from '@herald/shared';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import httpProxy from 'http-proxy';
import type { BalancerConfig } from './config.js';
import type { Discovery } from './discovery.js';
import { StaticDiscovery } from './static-discovery.js';
import { RedisDiscovery } from './redis-discovery.js';
import type { BalancerRedisTarget } from './redis-connection.js';
import { WorkerPool, type Worker, type WorkerSource } from './worker-pool.js';
import { HealthChecker } from './health-checker.js';
import { rankWorkers } from './rendezvous.js';
import { setForwardedHeaders } from './forwarded-headers.js';
import { formatSticky, stickyKey } from './sticky-key.js';
import { Tunnel, type TunnelContext } from './tunnel.js';
import { errorCode, isConnectError } from './upstream-errors.js';
import { workerStatus, type BalancerStatus } from './status.js';
import type { Relay } from './data-plane.js';
import { handleOps, OpsStatsSource } from './ops-page.js';
import { BALANCER_HEADER } from '@herald/shared';
import { RedisDrainRequest } from './redis-drain-request.js';

/** Path of the balancer's own status endpoint (never proxied). */
export const STATUS_PATH = '/balancer/status';

/** Pace of the shutdown: tunnels are closed in this many batches per second. */
const DRAIN_TICK_MS = 100;
/** At shutdown, how long to wait for the relay to report the last tunnels closed. */
const TUNNEL_REPORT_WAIT_MS = 2000;
/** Share of the drain budget over which workers close this balancer's connections (the rest lets clients answer). */
const WORKER_SPREAD_SHARE = 0.5;

/**
 * The sticky balancer: an HTTP server that proxies plain requests and WebSocket upgrades to
 * workers chosen by rendezvous hashing of a sticky key, over the workers that pass health checks.
 *
 * Lifecycle: `start()` discovers workers, runs one round of health checks, then listens;
 * `close()` drains (see {@link Balancer.close}) and releases everything.
 */
export class Balancer {
  private readonly server: http.Server | https.Server;
  private readonly proxy: httpProxy;
  private readonly pool: WorkerPool;
  private readonly checker: HealthChecker;
  private readonly discoveries: Discovery[] = [];
  private readonly limiter: IpConnectionLimit;
  private readonly tunnels = new Set<Tunnel>();
  private readonly tunnelBySocket = new WeakMap<object, Tunnel>();
  private readonly cookieToSet = new WeakMap<IncomingMessage, string>();
  private readonly clients = new Set<Socket>();
  /** `/balancer/` and `/balancer/stats`: the workers' /metrics, scraped on demand (ops-page.ts). */
  private readonly ops = new OpsStatsSource(() => this.status());
  // Plain HTTP to workers reuses connections; idle ones are dropped before the worker's own
  // keep-alive timeout (Node's default 5 s) so a request never races a closing socket.
  private readonly agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64, timeout: 4000 });
  private readonly tunnelContext: TunnelContext;
  private readonly relay: Relay | undefined;
  private readonly drainRequest: RedisDrainRequest | undefined;
  private tunnelsGone: (() => void) | undefined;
  private readonly startedAt = Date.now();
  private inFlight = 0;
  /** With TLS: when the certificate in use was loaded (start or the last reload), ms since epoch. */
  private certLoadedAt = 0;
  private certReloads = 0;
  private draining = false;
  private closing: Promise<void> | undefined;

  /**
   * @param config - validated configuration (see {@link loadConfig})
   * @param logger - pino logger
   * @param relay - the native data plane ({@link loadRelay}); undefined keeps tunnels on stream pipes. @default undefined
   * @throws ConfigError when `config.tls` names files that do not make a certificate and key
   */
  constructor(
    private readonly config: BalancerConfig,
    private readonly logger: Logger,
    relay?: Relay,
  ) {
    this.pool = new WorkerPool({ rise: config.healthRise, fall: config.healthFall }, (change) => {
      const level = change.to === 'healthy' ? 'info' : 'warn';
      this.logger[level]({ worker: change.worker.address, node: change.worker.nodeId, from: change.from, to: change.to, reason: change.reason }, 'worker state');
    });
    this.checker = new HealthChecker(
      this.pool,
      { path: config.healthPath, intervalMs: config.healthIntervalMs, timeoutMs: config.healthTimeoutMs },
      logger,
    );
    this.limiter = new IpConnectionLimit(config.maxConnectionsPerIp);
    if (config.workers.length > 0) this.discoveries.push(new StaticDiscovery(config.workers));
    const target: BalancerRedisTarget | undefined = config.redisCluster
      ? { cluster: config.redisCluster, partitions: config.redisPartitions }
      : config.redisUrl !== undefined
        ? { url: config.redisUrl, tls: config.redisTls.tls }
        : undefined;
    if (target) {
      this.discoveries.push(new RedisDiscovery({ target, prefix: config.redisPrefix, intervalMs: config.discoveryIntervalMs }, logger));
      this.drainRequest = new RedisDrainRequest({ target, prefix: config.redisPrefix, balancerId: config.balancerId }, logger);
    }

    this.proxy = httpProxy.createProxyServer({ xfwd: false });
    // Errors of calls with a callback go to the callback; this catches anything else.
    this.proxy.on('error', (error: Error) => this.logger.warn({ err: errorCode(error) }, 'proxy error'));
    this.proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.tunnelBySocket.get(socket)?.attach(proxyReq));
    this.proxy.on('proxyRes', (proxyRes, req, res) => {
      // A response cut off upstream (the worker died mid-stream: an SSE stream, a long body) must
      // not hang open toward the client: http-proxy's pipe never ends it, so it is cut off too.
      proxyRes.once('close', () => {
        if (!proxyRes.complete) res.destroy();
      });
      const cookie = this.cookieToSet.get(req);
      if (cookie === undefined) return;
      const prior = proxyRes.headers['set-cookie'] ?? [];
      proxyRes.headers['set-cookie'] = [...prior, cookie];
    });

    // A TLS tunnel's bytes are encrypted in Node: they can never go to the relay (data-plane.ts).
    this.relay = config.tls ? undefined : relay;
    this.tunnelContext = {
      relay: this.relay,
      proxyWs: (req, socket, head, worker, onError) =>
        this.proxy.ws(req, socket, head, { target: targetUrl(worker) }, (error: Error) => onError(error)),
      markDown: (worker, reason) => this.pool.markDown(worker, reason),
      checkSoon: (worker) => void this.checker.check(worker),
      closed: (tunnel) => {
        this.tunnels.delete(tunnel);
        this.limiter.release(tunnel.ip);
        if (this.tunnels.size === 0) this.tunnelsGone?.();
      },
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      tunnelIdleMs: config.tunnelIdleMs,
      logger,
    };

    const serverOptions = {
      // A client that never finishes its request head is dropped (slowloris); the default
      // 30 s sweep would let such a connection live far past the timeout.
      headersTimeout: Math.min(config.handshakeTimeoutMs, 60_000),
      requestTimeout: Math.max(config.upstreamTimeoutMs, config.handshakeTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.min(1000, config.handshakeTimeoutMs),
    };
    if (config.tls) {
      // TLS ends here; workers are reached over plain HTTP (X-Forwarded-Proto: https tells them).
      const credentials = loadTlsCredentials(config.tls);
      this.certLoadedAt = Date.now();
      const tlsServer = https.createServer({ ...serverOptions, ...credentials, handshakeTimeout: config.handshakeTimeoutMs });
      // Plain HTTP on the TLS port is told so (400), not answered with an empty reply.
      answerPlainHttpOnTls(tlsServer, config.handshakeTimeoutMs);
      this.server = tlsServer;
      this.server.on('tlsClientError', (error: NodeJS.ErrnoException) => this.logger.debug({ err: errorCode(error) }, 'TLS handshake failed'));
    } else {
      this.server = http.createServer(serverOptions);
    }
    // With TLS, `connection` is the TCP socket under the TLSSocket that requests and upgrades run
    // on: destroying it ends both, and it counts connections that never finish their handshake.
    this.server.on('connection', (socket: Socket) => {
      this.clients.add(socket);
      // Errors before or after the upgrade must never reach the process: log, and let `close` clean up.
      socket.on('error', (error) => this.logger.debug({ err: errorCode(error) }, 'client socket error'));
      socket.once('close', () => this.clients.delete(socket));
    });
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
      destroyLater(socket);
    });
    this.server.on('request', (req, res) => this.handleRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.handleUpgrade(req, socket, head));
    // Before it listens, an error (EADDRINUSE) is start()'s rejection, reported once by the bin.
    this.server.on('error', (error) => {
      if (this.server.listening) this.logger.error({ err: errorCode(error) }, 'server error');
    });
  }

  /**
   * Discovers workers, checks them once (bounded by the health timeout), then listens.
   *
   * @returns the bound port
   */
  async start(): Promise<{ port: number }> {
    await Promise.all([
      ...this.discoveries.map((discovery) => discovery.start((workers) => this.onDiscovered(discovery.name, workers))),
      this.drainRequest?.start(),
    ]);
    this.checker.start();
    await this.checker.round();
    if (this.draining) throw new Error('closed before it started listening');
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen(this.config.port, this.config.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    return { port: (this.server.address() as AddressInfo).port };
  }

  /**
   * Replaces the certificate and key (SIGHUP in the bin, see reloadTlsOnSighup): new handshakes
   * get them; open tunnels keep their TLS session and are not touched.
   *
   * @throws Error when the balancer serves plain HTTP
   */
  setSecureContext(credentials: TlsCredentials): void {
    if (!(this.server instanceof https.Server)) throw new Error('this balancer serves plain HTTP (HERALD_TLS_CERT is not set)');
    this.server.setSecureContext(credentials);
    this.certLoadedAt = Date.now();
    this.certReloads += 1;
  }

  /** The bound address, once listening. */
  address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /** A snapshot of `/balancer/status`. */
  status(): BalancerStatus {
    const workers = this.pool.all();
    return {
      status: this.draining ? 'draining' : 'ok',
      id: this.config.balancerId,
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      sticky: formatSticky(this.config.sticky),
      discovery: this.discoveries.map((d) => d.name),
      healthy: workers.filter((w) => w.state === 'healthy').length,
      relay: this.relay ? 'native' : 'js',
      tls: this.config.tls ? { enabled: true, dataPlane: 'js', certLoadedAt: this.certLoadedAt, reloads: this.certReloads } : { enabled: false },
      connections: { clients: this.clients.size, tunnels: this.tunnels.size, requests: this.inFlight },
      workers: workers.map(workerStatus),
    };
  }

  /**
   * Graceful shutdown. The balancer keeps listening, but only to answer `/balancer/status`
   * (`"status":"draining"`); every other request and upgrade gets 503 `shutting_down`, and upgrades
   * still waiting for their worker are refused the same way. Then:
   * - with Redis, the workers are asked (admin command `drain-balancer`) to close the connections
   *   that came through this balancer with 1001, in paced batches over half of `drainMs`; the
   *   balancer waits for its tunnels to end, and cuts the ones still open when `drainMs` is over;
   * - without Redis (a static worker list) it has no way to reach the workers' sessions, so it
   *   cuts open tunnels in paced batches over `drainMs` (their clients see 1006 and reconnect).
   * Then it stops listening and releases everything.
   *
   * @returns when every socket is closed
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.draining = true;
    this.server.closeIdleConnections();
    await Promise.all(this.discoveries.map((d) => d.stop()));
    this.checker.stop();
    const deadline = Date.now() + this.config.drainMs;
    for (const tunnel of this.tunnels) tunnel.refuse();
    const asked = await this.askWorkersToDrain();
    if (asked) {
      await this.tunnelsClosed(deadline);
    } else {
      while (this.tunnels.size > 0 && Date.now() < deadline) {
        const ticksLeft = Math.max(1, Math.ceil((deadline - Date.now()) / DRAIN_TICK_MS));
        const batch = Math.ceil(this.tunnels.size / ticksLeft);
        let n = 0;
        for (const tunnel of this.tunnels) {
          if (n++ >= batch) break;
          tunnel.destroy();
        }
        await delay(DRAIN_TICK_MS);
        this.server.closeIdleConnections();
      }
    }
    if (this.tunnels.size > 0) this.logger.warn({ tunnels: this.tunnels.size }, 'drain time over: cutting the tunnels still open');
    // Relayed tunnels close on the relay's thread and report back shortly after; the timer
    // (ref'd) keeps the process up for those reports, and bounds the wait should one not come.
    let timer: NodeJS.Timeout | undefined;
    const gone = new Promise<void>((resolve) => {
      this.tunnelsGone = resolve;
      timer = setTimeout(resolve, TUNNEL_REPORT_WAIT_MS);
      if (this.tunnels.size === 0) resolve();
    });
    for (const tunnel of this.tunnels) tunnel.destroy();
    await gone;
    clearTimeout(timer);
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.clients) socket.destroy();
    await stopped;
    this.drainRequest?.stop();
    this.agent.destroy();
    this.proxy.close();
  }

  /**
   * Sends the `drain-balancer` command when there is Redis and something to drain.
   *
   * @returns whether the workers were asked (false: no Redis, or Redis failed)
   */
  private async askWorkersToDrain(): Promise<boolean> {
    if (!this.drainRequest) {
      if (this.tunnels.size > 0) this.logger.info({ tunnels: this.tunnels.size }, 'no Redis to reach the workers: cutting tunnels in paced batches');
      return false;
    }
    if (this.tunnels.size === 0) return true;
    const spreadMs = Math.floor(this.config.drainMs * WORKER_SPREAD_SHARE);
    try {
      const workers = await this.drainRequest.request(spreadMs);
      this.logger.info({ balancer: this.config.balancerId, tunnels: this.tunnels.size, workers, spreadMs }, 'asked the workers to drain this balancer\'s connections');
      return true;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'cannot ask the workers to drain (Redis): cutting tunnels in paced batches');
      return false;
    }
  }

  /** Resolves when no tunnel is left, or at `deadline`; idle keep-alive sockets are closed meanwhile. */
  private async tunnelsClosed(deadline: number): Promise<void> {
    while (this.tunnels.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(DRAIN_TICK_MS, Math.max(0, deadline - Date.now())));
        this.tunnelsGone = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.tunnelsGone = undefined;
      this.server.closeIdleConnections();
    }
  }

  private onDiscovered(source: WorkerSource, workers: Array<{ address: string; nodeId?: string }>): void {
    const { added, removed } = this.pool.sync(source, workers);
    for (const worker of added) {
      this.logger.info({ worker: worker.address, node: worker.nodeId, source }, 'worker discovered');
      void this.checker.check(worker);
    }
    for (const worker of removed) {
      this.logger.info({ worker: worker.address, node: worker.nodeId, source }, 'worker gone');
    }
  }

  /** Workers to try for a request, best first: the key's owner, then its runners-up. */
  private candidates(key: string, limit: number): Worker[] {
    const healthy = this.pool.healthy();
    const byAddress = new Map(healthy.map((w) => [w.address, w]));
    return rankWorkers(key, [...byAddress.keys()])
      .slice(0, limit)
      .map((address) => byAddress.get(address)!);
  }

  private keyFor(req: IncomingMessage, ip: string): string {
    return stickyKey(req, this.config.sticky) ?? ip;
  }

  private handleRequest(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', (error) => this.logger.debug({ err: errorCode(error) }, 'request error'));
    res.on('error', (error) => this.logger.debug({ err: errorCode(error) }, 'response error'));
    const path = (req.url ?? '/').split('?', 1)[0];
    // Only the balancer may tag a request with its id (see handleUpgrade).
    delete req.headers[BALANCER_HEADER];
    // HTTP fallback sessions opened through this balancer are drained with it, like its tunnels.
    if (path === '/sse' || path === '/poll') req.headers[BALANCER_HEADER] = this.config.balancerId;
    if (handleOps(path, res, this.ops)) return;
    if (path === STATUS_PATH) {
      const body = JSON.stringify(this.status());
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    if (this.draining) {
      res.setHeader('connection', 'close');
      sendError(res, 503, 'shutting_down', 'the balancer is shutting down');
      return;
    }
    const ip = clientAddress(req, this.config.trustedProxies);
    let key = this.keyFor(req, ip);
    if (this.config.sticky.kind === 'cookie' && stickyKey(req, this.config.sticky) === undefined) {
      // First visit in cookie mode: give the browser a key, so its later requests and its
      // WebSocket upgrade (which carries the cookie) reach the same worker.
      key = randomBytes(12).toString('base64url');
      this.cookieToSet.set(req, `${this.config.sticky.name}=${key}; Path=/; HttpOnly; SameSite=Lax`);
    }
    setForwardedHeaders(req, this.config.trustedProxies, isEncrypted(req));
    // A request with a body cannot be replayed (the body was streamed to the failed worker).
    const bodyless = !req.headers['transfer-encoding'] && (req.headers['content-length'] ?? '0') === '0';
    const candidates = this.candidates(key, bodyless ? this.config.retries + 1 : 1);
    if (candidates.length === 0) {
      sendError(res, 503, 'no_worker', 'no healthy worker');
      return;
    }
    this.inFlight += 1;
    res.once('close', () => {
      this.inFlight -= 1;
    });
    this.proxyHttp(req, res, candidates, 0);
  }

  private proxyHttp(req: IncomingMessage, res: ServerResponse, candidates: Worker[], attempt: number): void {
    const worker = candidates[attempt]!;
    const started = Date.now();
    worker.requests += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      worker.requests -= 1;
    };
    res.once('close', release);
    this.proxy.web(req, res, { target: targetUrl(worker), agent: this.agent, proxyTimeout: this.config.upstreamTimeoutMs }, (error: Error) => {
      release();
      const code = errorCode(error);
      if (isConnectError(error)) {
        this.pool.markDown(worker, code);
        if (attempt + 1 < candidates.length && !res.headersSent && !res.destroyed) {
          this.proxyHttp(req, res, candidates, attempt + 1);
          return;
        }
      } else {
        void this.checker.check(worker);
      }
      this.logger.debug({ worker: worker.address, err: code, url: redactUrl(req.url) }, 'request to worker failed');
      if (Date.now() - started >= this.config.upstreamTimeoutMs) sendError(res, 504, 'gateway_timeout', 'the worker did not answer in time');
      else sendError(res, 502, 'bad_gateway', `the worker failed (${code})`);
    });
  }

  private handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // Already gone (reset while Node parsed the head): its `close` has fired, nothing to track.
    if (socket.destroyed) return;
    if (this.draining) {
      rejectUpgrade(socket, 503, 'shutting_down', 'the balancer is shutting down');
      return;
    }
    const upgrade = req.headers.upgrade ?? '';
    if (req.method !== 'GET' || upgrade.toLowerCase() !== 'websocket') {
      rejectUpgrade(socket, 400, 'bad_request', 'only WebSocket upgrades are proxied');
      return;
    }
    if (this.tunnels.size >= this.config.maxConnections) {
      this.logger.warn({ max: this.config.maxConnections }, 'connection cap reached');
      rejectUpgrade(socket, 503, 'over_capacity', 'the balancer is at its connection limit');
      return;
    }
    const ip = clientAddress(req, this.config.trustedProxies);
    if (!this.limiter.acquire(ip)) {
      this.logger.info({ ip }, 'per-IP connection cap reached');
      rejectUpgrade(socket, 429, 'too_many_connections', `at most ${this.config.maxConnectionsPerIp} connections per address`);
      return;
    }
    const key = this.keyFor(req, ip);
    const candidates = this.candidates(key, this.config.retries + 1);
    if (candidates.length === 0) {
      this.limiter.release(ip);
      rejectUpgrade(socket, 503, 'no_worker', 'no healthy worker');
      return;
    }
    setForwardedHeaders(req, this.config.trustedProxies, isEncrypted(req));
    // Which balancer the connection comes through, so the workers can drain exactly this
    // instance's connections when it stops; whatever the client sent is replaced.
    req.headers[BALANCER_HEADER] = this.config.balancerId;
    const tunnel = new Tunnel(req, socket, head, ip, candidates, this.tunnelContext);
    this.tunnels.add(tunnel);
    this.tunnelBySocket.set(socket, tunnel);
    tunnel.start();
  }
}

function isEncrypted(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true;
}

function targetUrl(worker: Worker): string {
  const host = worker.host.includes(':') ? `[${worker.host}]` : worker.host;
  return `http://${host}:${worker.port}`;
}
