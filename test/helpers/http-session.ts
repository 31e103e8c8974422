import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { fromBase64 } from '@herald/protocol';

type Frame = Record<string, any>;

/**
 * A test client of the HTTP fallback (`/poll` or `/sse` plus `/emit`) that records every server
 * frame, like TestClient does for `/ws`. Binary frames (base64 form) are decoded into `binary`.
 */
export class HttpTestClient {
  readonly frames: Frame[] = [];
  readonly binary: Buffer[] = [];
  /** SSE event ids received, in order. */
  readonly eventIds: string[] = [];
  session?: string;
  /** Set once the close frame arrived. */
  closeFrame?: { code: number; reason: string };
  private nextId = 1;
  private readonly waiters = new Set<() => void>();
  private stopped = false;
  private lastSeq = 0;
  private sseReq?: ClientRequest;
  /** Status of the last poll or SSE request that failed (404 once the session is gone). */
  failedStatus?: number;

  private constructor(
    readonly base: string,
    readonly mode: 'poll' | 'sse',
    private readonly headers: Record<string, string>,
  ) {}

  /** Opens a session (`query` like `?user=alice`) and waits until its id is known. */
  static async open(base: string, mode: 'poll' | 'sse', query = '', headers: Record<string, string> = {}): Promise<HttpTestClient> {
    const c = new HttpTestClient(base, mode, headers);
    if (mode === 'poll') c.pollLoop(`${base}/poll${query}`);
    else c.stream(`${base}/sse${query}`);
    await c.waitUntil(() => c.session ?? (c.failedStatus !== undefined ? true : undefined), 5000, 'session id');
    if (!c.session) throw Object.assign(new Error(`session refused: ${c.failedStatus}`), { status: c.failedStatus });
    return c;
  }

  private take(frame: Frame): void {
    if (frame.type === 'binary') this.binary.push(Buffer.from(fromBase64(frame.data)!));
    else this.frames.push(frame);
    if (frame.type === 'close') this.closeFrame = { code: frame.code, reason: frame.reason };
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private async pollLoop(first: string): Promise<void> {
    let url = first;
    while (!this.stopped && !this.closeFrame) {
      const res = await fetch(url, { headers: this.headers }).catch(() => undefined);
      if (!res || res.status !== 200) {
        this.failedStatus = res?.status ?? 0;
        this.wake();
        return;
      }
      const body = (await res.json()) as { session: string; last: number; frames: Frame[] };
      this.session = body.session;
      this.lastSeq = body.last;
      for (const f of body.frames) this.take(f);
      this.wake();
      url = `${this.base}/poll?session=${encodeURIComponent(this.session)}&ack=${this.lastSeq}`;
    }
  }

  /** Reads an SSE stream with node:http (so a test can drop it and resume with `Last-Event-ID`). */
  stream(url: string, lastEventId?: string): void {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...this.headers };
    if (lastEventId) headers['last-event-id'] = lastEventId;
    const req = httpRequest(url, { headers });
    this.sseReq = req;
    req.on('error', () => undefined);
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        this.failedStatus = res.statusCode;
        res.resume();
        return this.wake();
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let event = 'message';
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue;
          const json = JSON.parse(data.join('\n'));
          if (event === 'session') {
            this.session = json.session;
            this.wake();
          } else {
            if (id) this.eventIds.push(id);
            this.take(json);
          }
        }
      });
      res.on('error', () => undefined);
      res.on('end', () => this.wake());
    });
    req.end();
  }

  /** Drops the SSE stream (the session stays on the server until it idles out). */
  dropStream(): void {
    this.sseReq?.destroy();
  }

  /** POSTs frames to `/emit`; resolves with the response status. */
  async emit(frames: unknown[], base = this.base): Promise<number> {
    const res = await fetch(`${base}/emit?session=${encodeURIComponent(this.session!)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(frames) });
    await res.arrayBuffer();
    return res.status;
  }

  /** Sends a frame with a fresh id and resolves with its ack or error frame. */
  async request(frame: Record<string, unknown>, ms = 5000): Promise<Frame> {
    const id = this.nextId++;
    const status = await this.emit([{ ...frame, id }]);
    if (status !== 204) throw new Error(`emit answered ${status}`);
    return this.waitFrame((f) => (f.type === 'ack' || f.type === 'error' || f.type === 'pong') && f.id === id, ms);
  }

  waitFrame(test: (f: Frame) => boolean, ms = 5000): Promise<Frame> {
    return this.waitUntil(() => this.frames.find(test), ms, 'frame');
  }

  of(type: string, channel?: string): Frame[] {
    return this.frames.filter((f) => f.type === type && (channel === undefined || f.channel === channel));
  }

  async waitCount(count: () => number, n: number, ms = 5000): Promise<void> {
    await this.waitUntil(() => (count() >= n ? true : undefined), ms, `${n} items`);
  }

  waitUntil<T>(probe: () => T | undefined, ms: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v === undefined) return false;
        clear();
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        clear();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(this.frames).slice(0, 400)}`));
      }, ms);
      const clear = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      if (!check()) this.waiters.add(check);
    });
  }

  /** Stops polling / reading (the server keeps the session until it idles out). */
  stop(): void {
    this.stopped = true;
    this.dropStream();
  }
}
