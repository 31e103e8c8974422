import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloseCode, ErrorCode, HttpErrorCode, encodeHttpClose, formatSessionId, fromBase64, parseEventId, sessionOwner } from '@herald/protocol';
import { balancerTag, clientAddress, redactUrl, sendError, type IpConnectionLimit, type Logger, type TrustedProxies } from '@herald/shared';
import type { Authenticator } from './auth.js';
import type { Broker } from './broker.js';
import { HttpTransport, type HttpTransportLimits, type PollReply } from './http-transport.js';
import { BodyError, readJsonBody } from './http-util.js';
import type { OriginPolicy } from './origin.js';
import type { TokenBucket } from './rate-limit.js';
import { Session, type SessionDeps } from './session.js';
import { isForwardCommand, type ForwardCommand, type ForwardReply } from './http-forward.js';
import { BalancerConnections } from './balancer-connections.js';

/** Options of the HTTP fallback (SPEC §9); every field has a default. */
export interface HttpFallbackOptions extends HttpTransportLimits {
  /** Frames one `POST /emit` may carry. @default 100 */
  maxEmitFrames: number;
  /** A request forwarded to the session's owner node without an answer after this long fails with 504, in ms (a poll: on top of its hold). @default 5000 */
  forwardTimeoutMs: number;
}

/** Defaults of {@link HttpFallbackOptions} (`heartbeatMs` and `closeGraceMs` follow the worker's). */
export const DEFAULT_HTTP_FALLBACK = { pollHoldMs: 25_000, idleMs: 30_000, closeGraceMs: 5000, maxEmitFrames: 100, forwardTimeoutMs: 5000, replayBytes: 65_536 };

/** What the fallback needs of its worker: the same pieces `/ws` upgrades use. */
export interface HttpFallbackHost {
  nodeId: string;
  broker: Broker;
  authenticator: Authenticator;
  origins: OriginPolicy;
  /** The worker-wide upgrade rate: creating a session takes a token like an upgrade. */
  upgrades: TokenBucket;
  ipLimit: IpConnectionLimit;
  trusted: TrustedProxies;
  /** The session dependencies of `/ws`, made on first use. */
  sessionDeps(): SessionDeps;
  /** Whether another connection fits under the worker's connection cap. */
  hasRoom(): boolean;
  draining(): boolean;
  maxMessageBytes: number;
  log: Logger;
}

/** A broker that can address one node (the Redis broker); the embedded one has no other node. */
interface NodeAddressing {
  commandNode(node: string, command: ForwardCommand | ForwardReply): Promise<number | void>;
}

function canAddress(broker: Broker): broker is Broker & NodeAddressing {
  return typeof (broker as Partial<NodeAddressing>).commandNode === 'function';
}

/** What a handled request answers: a status and a JSON body (`undefined`: 204). */
interface Outcome {
  status: number;
  body?: string;
}

const NOT_FOUND: Outcome = { status: 404, body: JSON.stringify({ error: { code: HttpErrorCode.NotFound, message: 'unknown session' } }) };

/**
 * `GET /sse`, `GET /poll` and `POST /emit`: the channel protocol over HTTP. Each session is an
 * {@link HttpTransport} under an ordinary {@link Session}, so every rule of `/ws` holds as is.
 * A request for a session this worker does not hold is forwarded to the owner named in the
 * session id, through the broker's node channel, and answered from there (no stickiness).
 */
export class HttpFallback {
  private readonly transports = new Map<string, HttpTransport>();
  private readonly sessions = new Map<string, Session>();
  /** Sessions by the balancer instance their first request came through (`X-Herald-Balancer`). */
  readonly viaBalancer = new BalancerConnections<Session>();
  private readonly pending = new Map<string, { resolve(outcome: Outcome): void; timer: NodeJS.Timeout }>();
  private nextRequest = 0;

  constructor(
    private readonly host: HttpFallbackHost,
    private readonly opts: HttpFallbackOptions,
  ) {}

  /** Open HTTP sessions on this worker. */
  get size(): number {
    return this.sessions.size;
  }

  /** Every open HTTP session (for drains). */
  all(): Session[] {
    return [...this.sessions.values()];
  }

  /** Resolves once every session open now is gone. */
  allClosed(): Promise<void> {
    return Promise.all([...this.transports.values()].map((t) => new Promise<void>((resolve) => (t.done ? resolve() : this.onceGone(t, resolve))))).then(() => undefined);
  }

  private readonly waiters = new Map<HttpTransport, Array<() => void>>();

  private onceGone(t: HttpTransport, fn: () => void): void {
    const list = this.waiters.get(t) ?? [];
    list.push(fn);
    this.waiters.set(t, list);
  }

  /** Ends every session at once, without close frames (worker close). */
  closeAll(): void {
    for (const t of [...this.transports.values()]) t.finish();
  }

  /** Handles `GET /sse`, `GET /poll`, `POST /emit` (and their CORS preflights); false for other paths. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    if (path !== '/sse' && path !== '/poll' && path !== '/emit') return false;
    const origin = req.headers.origin;
    if (!this.host.origins.allows(origin)) {
      this.host.log.debug({ origin: String(origin).slice(0, 200) }, 'http fallback refused: origin not allowed');
      sendError(res, 403, HttpErrorCode.Forbidden, 'origin not allowed');
      return true;
    }
    // An allowed origin may call from another site: answer CORS for it (credentials are tokens, not cookies).
    if (typeof origin === 'string') {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-methods': 'GET, POST', 'access-control-allow-headers': 'authorization, content-type, last-event-id', 'access-control-max-age': '600' });
      res.end();
      return true;
    }
    const wanted = path === '/emit' ? 'POST' : 'GET';
    if (req.method !== wanted) {
      sendError(res, 405, HttpErrorCode.BadRequest, `${path} takes ${wanted}`, { allow: wanted });
      return true;
    }
    res.setHeader('cache-control', 'no-store');
    if (path === '/emit') await this.emit(req, res, url);
    else if (path === '/poll') await this.poll(req, res, url);
    else await this.sse(req, res, url);
    return true;
  }

  // ---- session creation ----------------------------------------------------

  /**
   * Opens a session with the checks of a `/ws` upgrade (drain, upgrade rate, connection caps,
   * token). Answers the refusal itself and returns undefined when refused.
   */
  private async open(req: IncomingMessage, res: ServerResponse, url: URL, mode: 'sse' | 'poll'): Promise<{ transport: HttpTransport; session: Session } | undefined> {
    const { host } = this;
    if (host.draining()) return void sendError(res, 503, HttpErrorCode.ShuttingDown, 'draining', { 'Retry-After': '1' });
    if (!host.upgrades.take()) return void sendError(res, 503, HttpErrorCode.RateLimited, 'too many new connections, retry', { 'Retry-After': '1' });
    if (!host.hasRoom()) return void sendError(res, 503, HttpErrorCode.OverCapacity, 'too many connections', { 'Retry-After': '5' });
    let ip: string | undefined;
    if (host.ipLimit.max > 0) {
      ip = clientAddress(req, host.trusted);
      if (!host.ipLimit.acquire(ip)) return void sendError(res, 429, HttpErrorCode.TooManyConnections, 'too many connections from this address', { 'Retry-After': '5' });
    }
    const release = () => {
      if (ip !== undefined) host.ipLimit.release(ip);
    };
    const auth = await host.authenticator.fromRequest(req, url);
    if (!auth.ok) {
      release();
      host.log.debug({ url: redactUrl(req.url), status: auth.status, reason: auth.message }, 'http session refused');
      // An EventSource cannot read a status: like a `/ws` upgrade, it gets the close code instead.
      if (mode === 'sse' && auth.closeAfterUpgrade) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: ${encodeHttpClose(CloseCode.Unauthorized, auth.message.slice(0, 120))}\n\n`);
        return undefined;
      }
      sendError(res, auth.status, auth.status === 401 ? HttpErrorCode.Unauthorized : HttpErrorCode.BadRequest, auth.message, auth.headers);
      return undefined;
    }
    const id = formatSessionId(host.nodeId, randomBytes(12).toString('base64url'));
    const deps = host.sessionDeps();
    const transport = new HttpTransport(id, mode, this.opts, (t) => {
      const gone = this.sessions.get(t.id);
      if (gone) this.viaBalancer.remove(gone);
      this.transports.delete(t.id);
      this.sessions.delete(t.id);
      release();
      for (const fn of this.waiters.get(t) ?? []) fn();
      this.waiters.delete(t);
    });
    const session = new Session(transport, auth.identity, { ...deps, endpoint: mode }, { awaitingAuth: auth.awaitingAuth });
    this.transports.set(id, transport);
    this.sessions.set(id, session);
    const balancer = balancerTag(req);
    if (balancer !== undefined) this.viaBalancer.add(session, balancer);
    session.start();
    return { transport, session };
  }

  // ---- GET /sse ------------------------------------------------------------

  private async sse(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    // A reconnecting EventSource sends the id of the last event it got; `?session=&last=` does the same by hand.
    const header = req.headers['last-event-id'];
    const resume = parseEventId(typeof header === 'string' ? header : undefined);
    const named = url.searchParams.get('session');
    const last = url.searchParams.get('last');
    const sessionId = named ?? resume?.session;
    let transport: HttpTransport | undefined;
    if (sessionId !== undefined) {
      transport = this.transports.get(sessionId);
      // SSE streams are not forwarded: a stream that lands elsewhere starts a new session (the client recovers with `since`).
      if (!transport || transport.mode !== 'sse') return void sendError(res, 404, HttpErrorCode.NotFound, 'unknown session');
    } else {
      transport = (await this.open(req, res, url, 'sse'))?.transport;
      if (!transport) return;
    }
    const lastSeq = last !== null && /^\d{1,15}$/.test(last) ? Number(last) : resume?.session === sessionId ? resume?.seq : undefined;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no', connection: 'keep-alive' });
    res.flushHeaders();
    if (!transport.attachSse(res, lastSeq)) {
      // The frames after `lastSeq` are no longer kept: the session cannot go on without a gap.
      res.end(`data: ${encodeHttpClose(CloseCode.SlowConsumer, 'cannot resume: frames no longer kept')}\n\n`);
      this.sessions.get(transport.id)?.close(CloseCode.SlowConsumer, 'cannot resume');
    }
  }

  // ---- GET /poll -----------------------------------------------------------

  private async poll(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const sessionId = url.searchParams.get('session');
    if (sessionId === null) {
      const opened = await this.open(req, res, url, 'poll');
      if (!opened) return;
      // The first answer is immediate: the client needs the session id (to send its `auth` frame, say).
      opened.transport.attachPoll(undefined, (body) => sendBody(res, { status: 200, body }), false);
      return;
    }
    const ackText = url.searchParams.get('ack');
    const ack = ackText !== null && /^\d{1,15}$/.test(ackText) ? Number(ackText) : undefined;
    const transport = this.transports.get(sessionId);
    if (transport) {
      if (transport.mode !== 'poll') return sendBody(res, NOT_FOUND);
      const reply: PollReply = (body) => sendBody(res, { status: 200, body });
      res.once('close', () => transport.abandonPoll(reply));
      transport.attachPoll(ack, reply);
      return;
    }
    sendBody(res, await this.forward(sessionId, { kind: 'http-poll', session: sessionId, ack }, this.opts.pollHoldMs + this.opts.forwardTimeoutMs));
  }

  // ---- POST /emit ----------------------------------------------------------

  private async emit(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const sessionId = url.searchParams.get('session');
    if (sessionId === null) return sendError(res, 400, HttpErrorCode.BadRequest, 'missing ?session=');
    let frames: unknown;
    try {
      frames = await readJsonBody(req, this.host.maxMessageBytes * 4 + 1024);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      return sendError(res, err.status, err.status === 413 ? HttpErrorCode.TooLarge : HttpErrorCode.BadRequest, err.message);
    }
    if (!Array.isArray(frames)) return sendError(res, 400, HttpErrorCode.BadRequest, 'the body must be a JSON array of frames');
    if (frames.length > this.opts.maxEmitFrames) return sendError(res, 413, HttpErrorCode.TooLarge, `at most ${this.opts.maxEmitFrames} frames per request`);
    // `?close=1`: the client ends the session (after these frames), like a WebSocket close from its side.
    const close = url.searchParams.get('close') === '1';
    if (this.transports.has(sessionId)) return sendBody(res, this.deliver(sessionId, frames, close));
    sendBody(res, await this.forward(sessionId, { kind: 'http-emit', session: sessionId, frames, close }, this.opts.forwardTimeoutMs));
  }

  /** Hands the frames of one `POST /emit` to a local session, in order; answers come on its stream. */
  private deliver(sessionId: string, frames: unknown[], close = false): Outcome {
    const transport = this.transports.get(sessionId);
    const session = this.sessions.get(sessionId);
    if (!transport || !session) return NOT_FOUND;
    for (const frame of frames) {
      const binary = isBinaryForm(frame);
      const data = binary ? Buffer.from(fromBase64(frame.data) ?? new Uint8Array(0)) : Buffer.from(JSON.stringify(frame));
      // The same bound as a WebSocket frame's payload (ws closes with 1009 above it).
      if (data.length > this.host.maxMessageBytes) {
        session.close(CloseCode.TooBig, 'message too big');
        return { status: 413, body: JSON.stringify({ error: { code: ErrorCode.TooLarge, message: `frame larger than ${this.host.maxMessageBytes} bytes` } }) };
      }
      transport.receive(data, binary);
    }
    if (close) transport.finish();
    return { status: 204 };
  }

  // ---- forwarding ----------------------------------------------------------

  /**
   * Sends a request for a session held by another node to that node and waits for its answer:
   * 404 at once when the session id names no node that listens (a dead or unknown owner).
   */
  private async forward(sessionId: string, request: { kind: 'http-poll'; session: string; ack?: number } | { kind: 'http-emit'; session: string; frames: unknown[]; close: boolean }, timeoutMs: number): Promise<Outcome> {
    const owner = sessionOwner(sessionId);
    const { broker, nodeId, log } = this.host;
    if (owner === undefined || owner === nodeId || !canAddress(broker)) return NOT_FOUND;
    const req = `${nodeId}:${++this.nextRequest}`;
    const answer = new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        resolve({ status: 504, body: JSON.stringify({ error: { code: HttpErrorCode.GatewayTimeout, message: 'the session owner did not answer' } }) });
      }, timeoutMs);
      timer.unref();
      this.pending.set(req, { resolve, timer });
    });
    try {
      const receivers = await broker.commandNode(owner, { ...request, from: nodeId, req } as ForwardCommand);
      // PUBLISH counts the receivers: none means the owner is gone, and so is the session.
      if (receivers === 0) this.settle(req, NOT_FOUND);
    } catch (err) {
      log.warn({ err, owner }, 'forwarding an http request failed');
      this.settle(req, { status: 503, body: JSON.stringify({ error: { code: ErrorCode.Unavailable, message: 'cannot reach the session owner' } }) });
    }
    return answer;
  }

  private settle(req: string, outcome: Outcome): void {
    const p = this.pending.get(req);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(req);
    p.resolve(outcome);
  }

  /** Carries out a forwarded request or takes a forwarded answer (from the broker: fields are checked). */
  onForward(command: unknown): void {
    if (!isForwardCommand(command)) return void this.host.log.warn('ignoring a malformed forwarded http request');
    if (command.kind === 'http-reply') return this.settle(command.req, { status: command.status, body: command.body });
    const replyTo = (outcome: Outcome) => {
      const reply: ForwardReply = { kind: 'http-reply', req: command.req, status: outcome.status, body: outcome.body };
      if (canAddress(this.host.broker)) this.host.broker.commandNode(command.from, reply).catch((err: unknown) => this.host.log.warn({ err }, 'answering a forwarded http request failed'));
    };
    if (command.kind === 'http-emit') return replyTo(this.deliver(command.session, command.frames, command.close === true));
    const transport = this.transports.get(command.session);
    if (!transport || transport.mode !== 'poll') return replyTo(NOT_FOUND);
    transport.attachPoll(command.ack, (body) => replyTo({ status: 200, body }));
  }
}

function isBinaryForm(frame: unknown): frame is { type: 'binary'; data: string } {
  return typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'binary' && typeof (frame as { data?: unknown }).data === 'string';
}

function sendBody(res: ServerResponse, outcome: Outcome): void {
  if (res.writableEnded || res.destroyed) return;
  if (outcome.body === undefined) {
    res.writeHead(outcome.status);
    return void res.end();
  }
  res.writeHead(outcome.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(outcome.body) });
  res.end(outcome.body);
}
