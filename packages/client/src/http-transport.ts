import { fromBase64, toBase64, type HttpTransportName } from '@herald/protocol';
import { ABNORMAL_CLOSURE, type ClientTransport, type TransportHandlers } from './transport.js';

/** What a fetch-based transport needs: `globalThis.fetch` in browsers and Node 20. */
export type FetchLike = typeof globalThis.fetch;

/** The platform pieces and URLs of one HTTP fallback attempt. */
export interface HttpTransportInit {
  /** URL of the stream or first poll (`/sse` or `/poll`, with params and `?token=` when needed). */
  url: string;
  /** URL of `/emit` with the client's params (without `?session=`: added per request). */
  emitUrl: string;
  /** Headers of the first request (an `Authorization` header when the token goes that way). */
  headers: Record<string, string>;
  fetch: FetchLike;
  /** The browser's EventSource, when there is one (SSE only; otherwise `fetch` streams). */
  EventSource?: EventSourceConstructor;
}

/** The part of the browser's EventSource API the SSE transport uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onmessage: ((event: { data: string; lastEventId?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: { data: string }) => void): void;
  close(): void;
}

/** An EventSource constructor (`globalThis.EventSource` in browsers). */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** `readyState` of an EventSource that gave up (a non-200 answer, or closed). */
const EVENT_SOURCE_CLOSED = 2;

/** Frames per `POST /emit`: the server's default `HERALD_HTTP_MAX_EMIT_FRAMES`. */
const MAX_EMIT_FRAMES = 100;
/** Characters per `POST /emit` body, under the server's default bound (4 × 64 KiB + 1 KiB). */
const MAX_EMIT_CHARS = 128 * 1024;

/** `url` with `session=` added to its query. */
function withSession(url: string, session: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}session=${encodeURIComponent(session)}`;
}

/** A status of an HTTP answer as the close code a WebSocket client would have seen. */
function statusToCode(status: number): number {
  if (status === 401) return 4001;
  if (status === 403) return 1008;
  if (status === 429) return 4029;
  return ABNORMAL_CLOSURE;
}

/**
 * The client side of an HTTP fallback session (docs/protocol.md, "HTTP fallback"): the server's
 * frames come from a stream or polls (subclasses), the client's go out as `POST /emit` batches —
 * one request at a time, so frames keep their order; what is sent meanwhile leaves in the next.
 */
abstract class HttpSessionTransport implements ClientTransport {
  abstract readonly name: HttpTransportName;
  protected session?: string;
  protected attached = true;
  #ended = false;
  #batch: string[] = [];
  #emitting = false;
  /** Aborted when the transport ends; every request gets its own controller chained to it. */
  protected readonly abort = new AbortController();

  /**
   * One request, read to the end, on a controller of its own: fetch (undici) keeps an abort
   * listener on the signal it was given until the request is over, so sharing one signal across
   * thousands of polls and emits would pile up listeners.
   */
  protected async request(url: string, init: RequestInit): Promise<{ status: number; text: string }> {
    const own = new AbortController();
    const cancel = () => own.abort();
    if (this.abort.signal.aborted) own.abort();
    this.abort.signal.addEventListener('abort', cancel, { once: true });
    try {
      const res = await this.init.fetch(url, { ...init, signal: own.signal });
      return { status: res.status, text: await res.text() };
    } finally {
      this.abort.signal.removeEventListener('abort', cancel);
    }
  }

  constructor(
    readonly generation: number,
    protected readonly init: HttpTransportInit,
    protected readonly handlers: TransportHandlers,
  ) {}

  get open(): boolean {
    return this.session !== undefined && !this.#ended;
  }

  send(data: string | Uint8Array): boolean {
    if (!this.open) return false;
    this.#batch.push(typeof data === 'string' ? data : JSON.stringify({ type: 'binary', data: toBase64(data) }));
    if (!this.#emitting) void this.#emit();
    return true;
  }

  async #emit(): Promise<void> {
    this.#emitting = true;
    // Frames sent in the same turn of the event loop leave in one request.
    await Promise.resolve();
    while (this.#batch.length > 0 && !this.#ended) {
      // Within the server's default bounds of one POST /emit (HERALD_HTTP_MAX_EMIT_FRAMES, 100;
      // a body of 4 × HERALD_MAX_MESSAGE_BYTES): the rest leaves in the next request.
      let take = 0;
      let bytes = 2;
      while (take < this.#batch.length && take < MAX_EMIT_FRAMES && (take === 0 || bytes + this.#batch[take]!.length < MAX_EMIT_CHARS)) bytes += this.#batch[take++]!.length + 1;
      const body = `[${this.#batch.slice(0, take).join(',')}]`;
      this.#batch = this.#batch.slice(take);
      let status: number;
      try {
        status = (await this.request(withSession(this.init.emitUrl, this.session!), { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status;
      } catch {
        status = 0;
      }
      if (status !== 204) return this.fail(status === 0 || status === 404 ? ABNORMAL_CLOSURE : statusToCode(status), `POST /emit answered ${status || 'nothing'}`);
    }
    this.#emitting = false;
  }

  /** A session id arrived: the transport is open. */
  protected opened(session: string): void {
    if (this.session !== undefined || !this.attached) return;
    this.session = session;
    // A closing tab never says goodbye over a stream or a poll (a WebSocket does, with its close):
    // a beacon ends the session at once, so the user leaves presence now, not after the idle time.
    if (typeof addEventListener === 'function' && typeof navigator !== 'undefined' && typeof navigator.sendBeacon === 'function') {
      addEventListener('pagehide', this.#onPageHide);
    }
    this.handlers.open();
  }

  readonly #onPageHide = (): void => {
    if (this.session !== undefined && !this.#ended) navigator.sendBeacon(this.#closeUrl(this.session), '[]');
  };

  #closeUrl(session: string): string {
    return `${withSession(this.init.emitUrl, session)}&close=1`;
  }

  /** One server frame (JSON text). The close frame ends the transport with its code. */
  protected frame(text: string): void {
    if (!this.attached) return;
    if (text.startsWith('{"type":"close"') || text.startsWith('{"type":"binary"')) {
      let parsed: { type?: string; code?: number; reason?: string; data?: string };
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      if (parsed.type === 'close') return this.fail(typeof parsed.code === 'number' ? parsed.code : ABNORMAL_CLOSURE, parsed.reason ?? '');
      if (parsed.type === 'binary') {
        const bytes = typeof parsed.data === 'string' ? fromBase64(parsed.data) : undefined;
        if (bytes) this.handlers.binary(bytes);
        return;
      }
    }
    this.handlers.text(text);
  }

  /** Ends the transport and reports `code` (once). */
  protected fail(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    if (typeof removeEventListener === 'function') removeEventListener('pagehide', this.#onPageHide);
    this.stopReading();
    if (!this.attached) return;
    this.attached = false;
    this.handlers.close(code, reason);
  }

  /** Stops the stream or the polls. */
  protected abstract stopReading(): void;

  detach(): void {
    this.attached = false;
  }

  /** Ends the session on the server too (`POST /emit?close=1`), so its presence goes at once. */
  close(): void {
    const session = this.session;
    this.abandon();
    if (session === undefined) return;
    this.init
      .fetch(this.#closeUrl(session), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' })
      .then((res) => res.arrayBuffer())
      .catch(() => undefined);
  }

  abandon(): void {
    this.detach();
    this.#ended = true;
    if (typeof removeEventListener === 'function') removeEventListener('pagehide', this.#onPageHide);
    this.stopReading();
    this.abort.abort();
  }
}

/**
 * `GET /sse`: the browser's EventSource when there is one (it resumes a dropped stream itself
 * with `Last-Event-ID`), else a `fetch` stream parsed here (Node).
 */
export class SseTransport extends HttpSessionTransport {
  readonly name = 'sse' as const;
  #source?: EventSourceLike;

  constructor(generation: number, init: HttpTransportInit, handlers: TransportHandlers) {
    super(generation, init, handlers);
    if (init.EventSource) this.#openEventSource(init.EventSource);
    else void this.#stream();
  }

  #openEventSource(Ctor: EventSourceConstructor): void {
    const source = new Ctor(this.init.url);
    this.#source = source;
    source.addEventListener('session', (event) => {
      try {
        this.opened((JSON.parse(event.data) as { session: string }).session);
      } catch {
        this.fail(ABNORMAL_CLOSURE, 'bad session event');
      }
    });
    source.onmessage = (event) => this.frame(event.data);
    // A dropped stream is retried by the EventSource (readyState CONNECTING); a refused one is final.
    source.onerror = () => {
      if (source.readyState === EVENT_SOURCE_CLOSED) this.fail(ABNORMAL_CLOSURE, 'event stream refused');
    };
  }

  async #stream(): Promise<void> {
    let res: Response;
    try {
      res = await this.init.fetch(this.init.url, { headers: { accept: 'text/event-stream', ...this.init.headers }, signal: this.abort.signal });
    } catch (error) {
      return this.fail(ABNORMAL_CLOSURE, `GET /sse failed: ${(error as Error).message}`);
    }
    if (res.status !== 200 || !res.body) return this.fail(statusToCode(res.status), `GET /sse answered ${res.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.#event(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // Aborted or reset: reported below.
    }
    this.fail(ABNORMAL_CLOSURE, 'event stream ended');
  }

  /** One SSE event block (WHATWG HTML §9.2.6: `field: value` lines; comments start with `:`). */
  #event(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
      else if (line.startsWith('event:')) event = line.slice(line[6] === ' ' ? 7 : 6);
    }
    if (data.length === 0) return;
    const text = data.join('\n');
    if (event === 'session') {
      try {
        this.opened((JSON.parse(text) as { session: string }).session);
      } catch {
        this.fail(ABNORMAL_CLOSURE, 'bad session event');
      }
    } else if (event === 'message') {
      this.frame(text);
    }
  }

  protected stopReading(): void {
    this.#source?.close();
    this.abort.abort();
  }
}

/** `GET /poll`: long-polling, each poll acknowledging what the previous one brought. */
export class PollTransport extends HttpSessionTransport {
  readonly name = 'long-polling' as const;

  constructor(generation: number, init: HttpTransportInit, handlers: TransportHandlers) {
    super(generation, init, handlers);
    void this.#loop();
  }

  async #loop(): Promise<void> {
    let url = this.init.url;
    let headers = this.init.headers;
    // Later polls keep the params (a balancer's sticky `sid`), not the token: the session is opened.
    const next = new URL(this.init.url);
    next.searchParams.delete('token');
    while (!this.abort.signal.aborted) {
      let body: { session?: unknown; last?: unknown; frames?: unknown };
      try {
        const res = await this.request(url, { headers });
        if (res.status !== 200) return this.fail(statusToCode(res.status), `GET /poll answered ${res.status}`);
        body = JSON.parse(res.text) as typeof body;
      } catch (error) {
        return this.fail(ABNORMAL_CLOSURE, `GET /poll failed: ${(error as Error).message}`);
      }
      if (typeof body.session !== 'string' || typeof body.last !== 'number' || !Array.isArray(body.frames)) return this.fail(ABNORMAL_CLOSURE, 'bad poll answer');
      this.opened(body.session);
      for (const f of body.frames) {
        if (!this.attached) return;
        this.frame(JSON.stringify(f));
      }
      next.searchParams.set('session', body.session);
      next.searchParams.set('ack', String(body.last));
      url = next.toString();
      headers = {};
    }
  }

  protected stopReading(): void {
    this.abort.abort();
  }
}
