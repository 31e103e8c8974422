import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import type { Transport, TransportEvents } from './transport.js';
import { closeWithGrace } from './close.js';
import { supportsFastWrite, writeFramed, type WireFrame } from './ws-fast-write.js';
import { coalesceWrites } from './write-coalescer.js';

/**
 * {@link Transport} of `/ws`: a ws socket. Frames written during one event-loop iteration leave
 * together (see `ws-fast-write.ts`), and a broadcast's pre-framed `wire` is written as is when ws
 * allows it.
 */
export class WsTransport implements Transport {
  /** Whether broadcasts may take the fast path on this socket (decided once: see supportsFastWrite). */
  private readonly fast: boolean;

  /**
   * @param ws the accepted WebSocket.
   * @param socket the TCP (or TLS) socket of its upgrade: ws's own, reached without its private fields.
   * @param closeGraceMs time a closing peer gets to complete the close before it is terminated.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly closeGraceMs: number,
  ) {
    this.fast = supportsFastWrite(ws);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(data: Buffer | Uint8Array | string, binary: boolean, wire?: WireFrame): void {
    const { ws, socket } = this;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (wire && this.fast && writeFramed(ws, socket, wire)) return;
    coalesceWrites(socket);
    ws.send(data, { binary });
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSING || this.ws.readyState === WebSocket.CLOSED) return;
    closeWithGrace(this.ws, code, reason, this.closeGraceMs);
  }

  bind(events: TransportEvents): void {
    const { ws } = this;
    // Shared listeners (see below): no closures per connection.
    eventsOf.set(ws, events);
    ws.on('message', onSocketMessage);
    ws.on('ping', onSocketPing);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose); // `on`, not `once` (a wrapper per socket): close fires once
  }
}

/**
 * The events target of each socket, for the listeners below: they are shared by every socket (an
 * emitter calls them with `this` = the socket), so an idle connection carries no closures of
 * its own (memory per connection, docs/benchmarks.md). Entries go with their socket.
 */
const eventsOf = new WeakMap<WebSocket, TransportEvents>();

function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  eventsOf.get(this)?.onFrame(buf, isBinary);
}

function onSocketPing(this: WebSocket): void {
  // Pings count against the frame rate too: ws answers them itself, so a ping flood costs CPU.
  eventsOf.get(this)?.onPing();
}

function onSocketError(this: WebSocket, err: Error): void {
  eventsOf.get(this)?.onError(err);
}

function onSocketClose(this: WebSocket): void {
  eventsOf.get(this)?.onClose();
}
