import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';

/** Called with each complete data frame: opcode (1 text, 2 binary) and its payload `buf[start, end)`. */
export type FrameHandler = (opcode: number, buf: Buffer, start: number, end: number, ws: RawWs) => void;

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * A minimal WebSocket client for load generation (RFC 6455, client side, no extensions).
 * It hands frame payloads to the caller as slices of the receive buffer, without a Buffer
 * or an event per message, so one agent can take several hundred thousand frames a second.
 * Outgoing frames use an all-zero mask key: still a masked frame as §5.3 requires, but no
 * XOR pass. Not for production use: no fragmentation of outgoing frames, no UTF-8 checks.
 */
export class RawWs {
  private pending: Buffer | null = null;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly onFrame: FrameHandler,
    private readonly onClose: () => void,
  ) {}

  /**
   * Opens `url` (`ws://host:port/path?query`) and resolves after the 101 response.
   *
   * @param localAddress - source address to bind (e.g. `127.0.0.7`): each source address has its
   *   own ephemeral port range, so several of them hold more connections than one could
   * @param ca - PEM certificate trusted for a `wss://` URL (which then speaks TLS). @default undefined (the system's CAs)
   */
  static connect(url: string, onFrame: FrameHandler, onClose: () => void, timeoutMs = 15_000, localAddress?: string, ca?: string): Promise<RawWs> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const where = { host: u.hostname, ...(localAddress ? { localAddress } : {}) };
      // Writes before the TLS handshake completes are queued by the TLSSocket.
      const socket: Socket =
        u.protocol === 'wss:' ? tlsConnect({ ...where, port: Number(u.port || 443), ca }) : connect({ ...where, port: Number(u.port || 80) });
      socket.setNoDelay(true);
      const timer = setTimeout(() => fail(new Error(`${url}: handshake timed out`)), timeoutMs);
      let head: Buffer = Buffer.alloc(0);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        head = head.length ? Buffer.concat([head, chunk]) : chunk;
        const end = head.indexOf(CRLF2);
        if (end < 0) return;
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`${url}: upgrade refused: ${status}`));
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', fail);
        const ws = new RawWs(socket, onFrame, onClose);
        socket.on('data', (c: Buffer) => ws.onData(c));
        socket.on('error', () => undefined);
        socket.on('close', () => ws.markClosed());
        resolve(ws);
        const rest = head.subarray(end + 4);
        if (rest.length) ws.onData(rest);
      };
      socket.on('data', onData);
      socket.on('error', fail);
      socket.once('close', () => fail(new Error(`${url}: closed during the handshake`)));
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return !this.closed;
  }

  /** Sends a text (opcode 1) or binary (2) frame. */
  send(data: string | Buffer, opcode = 1): void {
    if (this.closed) return;
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    this.socket.write(Buffer.concat([frameHeader(opcode, payload.length), payload]));
  }

  /** Sends an already framed message (see {@link frame}); the cheapest way to send the same bytes often. */
  sendFramed(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Sends a close frame (1000) and ends the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
    // A server that does not close its side still loses the socket.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private markClosed(): void {
    const wasOpen = !this.closed;
    this.closed = true;
    if (wasOpen) this.onClose();
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let pos = 0;
    const n = buf.length;
    while (n - pos >= 2) {
      const b0 = buf[pos]!;
      let len = buf[pos + 1]! & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (n - pos < 4) break;
        len = buf.readUInt16BE(pos + 2);
        hdr = 4;
      } else if (len === 127) {
        if (n - pos < 10) break;
        len = buf.readUInt32BE(pos + 6);
        hdr = 10;
      }
      if (n - pos < hdr + len) break;
      const start = pos + hdr;
      const end = start + len;
      const opcode = b0 & 0x0f;
      if (opcode === 1 || opcode === 2 || opcode === 0) this.onFrame(opcode, buf, start, end, this);
      else if (opcode === 9) this.send(Buffer.from(buf.subarray(start, end)), 0x0a); // ping → pong
      else if (opcode === 8) {
        const wasOpen = !this.closed;
        this.close();
        if (wasOpen) this.onClose();
        return;
      }
      pos = end;
    }
    if (pos < n) this.pending = pos === 0 ? buf : Buffer.from(buf.subarray(pos));
  }
}

/** Header of a final, masked (zero key) client frame of `length` bytes. */
function frameHeader(opcode: number, length: number): Buffer {
  if (length < 126) return Buffer.from([0x80 | opcode, 0x80 | length, 0, 0, 0, 0]);
  if (length < 65536) {
    const h = Buffer.from([0x80 | opcode, 0x80 | 126, 0, 0, 0, 0, 0, 0]);
    h.writeUInt16BE(length, 2);
    return h;
  }
  const h = Buffer.alloc(14);
  h[0] = 0x80 | opcode;
  h[1] = 0x80 | 127;
  h.writeUInt32BE(length, 6);
  return h;
}

/** A complete client frame (header + payload) for {@link RawWs.sendFramed}. */
export function frame(data: string | Buffer, opcode = 1): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([frameHeader(opcode, payload.length), payload]);
}

/**
 * Reads the decimal number at `buf[i]` (digits with an optional fraction), as written by
 * `toFixed`; stops at the first other byte. NaN when there is no digit.
 */
export function readNumber(buf: Buffer, i: number, end: number): number {
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
    digits++;
  }
  if (digits === 0) return NaN;
  if (buf[i] === 46) {
    let scale = 0.1;
    for (i++; i < end; i++) {
      const c = buf[i]! - 48;
      if (c < 0 || c > 9) break;
      v += c * scale;
      scale /= 10;
    }
  }
  return v;
}
