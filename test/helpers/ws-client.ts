import { WebSocket, type ClientOptions } from 'ws';
import type { ServerFrame } from '@herald/protocol';

type Frame = ServerFrame & Record<string, any>;

/** A `/ws` test client that records every frame and can await the ones it needs. */
export class TestClient {
  readonly frames: Frame[] = [];
  readonly binary: Buffer[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (isBinary) this.binary.push(buf);
      else this.frames.push(JSON.parse(buf.toString()));
      for (const w of [...this.waiters]) w();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of [...this.waiters]) w();
    }));
  }

  /** Opens a connection; resolves once it is open (the welcome frame may still be in flight). */
  static connect(url: string, options?: ClientOptions): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  /** Opens a connection and waits for the welcome frame. */
  static async open(url: string, options?: ClientOptions): Promise<TestClient> {
    const c = await TestClient.connect(url, options);
    await c.waitFrame((f) => f.type === 'welcome');
    return c;
  }

  get welcome(): Frame | undefined {
    return this.frames.find((f) => f.type === 'welcome');
  }

  /** Sends a JSON frame as is. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a frame with a fresh id and resolves with its ack or error frame. */
  async request(frame: Record<string, unknown>, ms = 5000): Promise<Frame> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return this.waitFrame((f) => (f.type === 'ack' || f.type === 'error') && f.id === id, ms);
  }

  /** Resolves with the first recorded frame (past or future) matching `test`. */
  waitFrame(test: (f: Frame) => boolean, ms = 5000): Promise<Frame> {
    return this.waitUntil(() => this.frames.find(test), ms, 'frame');
  }

  /** Resolves with the first recorded binary frame (past or future) matching `test`. */
  waitBinary(test: (b: Buffer) => boolean = () => true, ms = 5000): Promise<Buffer> {
    return this.waitUntil(() => this.binary.find(test), ms, 'binary frame');
  }

  /** Resolves once `count()` reaches `n`. */
  async waitCount(count: () => number, n: number, ms = 5000): Promise<void> {
    await this.waitUntil(() => (count() >= n ? true : undefined), ms, `${n} items`);
  }

  /** Recorded frames of `type` (and channel). */
  of(type: string, channel?: string): Frame[] {
    return this.frames.filter((f) => f.type === type && (channel === undefined || f.channel === channel));
  }

  private waitUntil<T>(probe: () => T | undefined, ms: number, what: string): Promise<T> {
    const found = probe();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.ws.readyState === WebSocket.CLOSED) {
          done();
          reject(new Error(`connection closed while waiting for a ${what}; got ${JSON.stringify(this.frames.slice(-5))}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for a ${what}; last frames ${JSON.stringify(this.frames.slice(-5))}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Closes (or terminates, when not open) and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    await this.closed;
  }
}
