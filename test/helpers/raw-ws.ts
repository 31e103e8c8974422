import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

/** Fields of a hand-built WebSocket frame (RFC 6455 §5.2); anything may be wrong on purpose. */
export interface RawFrame {
  /** @default true */
  fin?: boolean;
  /** The three reserved bits as a number 0-7. @default 0 */
  rsv?: number;
  opcode: number;
  payload?: Buffer | string;
  /** @default true (clients must mask) */
  mask?: boolean;
}

/** Builds one frame's bytes. */
export function buildFrame(f: RawFrame): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload) : (f.payload ?? Buffer.alloc(0));
  const masked = f.mask ?? true;
  const len = payload.length;
  const header: number[] = [((f.fin ?? true) ? 0x80 : 0) | ((f.rsv ?? 0) << 4) | (f.opcode & 0x0f)];
  const maskBit = masked ? 0x80 : 0;
  if (len < 126) header.push(maskBit | len);
  else if (len < 65536) header.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    header.push(maskBit | 127, 0, 0, 0, 0);
    header.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!masked) return Buffer.concat([Buffer.from(header), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from(header), key, body]);
}

/** A close frame payload: code + reason bytes. */
export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, typeof reason === 'string' ? Buffer.from(reason) : reason]);
}

/** A server frame read back from a raw socket. */
export interface ServerRawFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A raw TCP connection to a worker, for hostile-input tests: it writes whatever bytes it is
 * given and parses what comes back (HTTP response head, then unmasked server frames).
 */
export class RawSocket {
  readonly socket: Socket;
  /** Bytes received and not yet parsed. */
  private buf = Buffer.alloc(0);
  readonly frames: ServerRawFrame[] = [];
  /** The HTTP response head, once received. */
  head?: string;
  readonly ended: Promise<void>;
  private waiters = new Set<() => void>();
  private upgraded = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
      for (const w of [...this.waiters]) w();
    });
    this.ended = new Promise((resolve) => socket.once('close', () => {
      for (const w of [...this.waiters]) w();
      resolve();
    }));
  }

  /** Opens a TCP connection to 127.0.0.1:port. */
  static open(port: number): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new RawSocket(s)));
      s.once('error', reject);
    });
  }

  /** Opens a connection and completes a WebSocket upgrade on `path` with extra header lines. */
  static async upgrade(port: number, path = '/ws', extra: string[] = []): Promise<RawSocket> {
    const r = await RawSocket.open(port);
    r.write(upgradeRequest(path, extra));
    const head = await r.waitHead();
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
    return r;
  }

  write(data: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  private parse(): void {
    if (this.head === undefined) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.head = this.buf.subarray(0, end).toString('latin1');
      this.upgraded = this.head.startsWith('HTTP/1.1 101');
      this.buf = this.buf.subarray(end + 4);
      if (!this.upgraded) return;
    }
    if (!this.upgraded) return;
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      this.frames.push({ opcode, payload: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
    }
  }

  /** Resolves with the HTTP response head (status line and headers). */
  waitHead(ms = 5000): Promise<string> {
    return this.until(() => this.head, ms, 'an HTTP response');
  }

  /**
   * Resolves with the close code the server sent, or `'dropped'` when the socket ended
   * without a close frame.
   */
  async closeCode(ms = 5000): Promise<number | 'dropped'> {
    const close = await this.until(() => this.frames.find((f) => f.opcode === 0x8) ?? (this.socket.destroyed || this.socket.readableEnded ? null : undefined), ms, 'a close frame or the end of the socket');
    if (close === null) return 'dropped';
    return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005;
  }

  private until<T>(probe: () => T | undefined, ms: number, what: string): Promise<T> {
    const v = probe();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const check = () => {
        const x = probe();
        if (x !== undefined) {
          done();
          resolve(x);
        } else if (this.socket.destroyed) {
          done();
          reject(new Error(`socket closed while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Destroys the socket. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** An upgrade request's bytes. */
export function upgradeRequest(path: string, extra: string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}
