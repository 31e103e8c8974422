/**
 * The fast write path of `/ws`: a broadcast is framed once, with ws's own `Sender.frame()`, and
 * the same bytes are handed to every subscriber's ws sender, coalesced by `write-coalescer.ts`.
 *
 * The one private field of ws used anywhere in Herald is here: `WebSocket#_sender`, whose
 * `sendFrame(list)` writes an already framed message (what engine.io does for socket.io's
 * pre-encoded broadcasts). Checked against ws 8.18.x–8.23.0 (`node_modules/ws/package.json`);
 * test/ws-fast-write.test.ts fails when a ws release changes it, and at run time a socket
 * without it falls back to `ws.send`.
 */
import type { Socket } from 'node:net';
import * as wsModule from 'ws';
import { WebSocket } from 'ws';
import { coalesceBroadcast } from './write-coalescer.js';

/** ws's `Sender.frame` (public: `import { Sender } from 'ws'`, untyped by @types/ws). */
type FrameFn = (data: Buffer | Uint8Array, options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }) => Array<Buffer | Uint8Array>;

const Sender = (wsModule as unknown as { Sender: { frame: FrameFn } }).Sender;

/** The private part of ws this file relies on: the socket's sender and its `sendFrame`. */
interface WithSender {
  _sender?: { sendFrame?: (list: readonly Buffer[], cb?: (err?: Error) => void) => void } | null;
}

/**
 * A server → client message framed once (RFC 6455 §5.2: final, unmasked, RSV1 clear) as the
 * one-buffer list ws's sender writes: built once per broadcast, written unchanged to every socket.
 */
export type WireFrame = readonly [Buffer];

/**
 * Frames `payload` once for every subscriber. One buffer rather than ws's `[header, payload]`
 * pair, so each socket gets one write of the same bytes instead of a two-buffer writev
 * (docs/benchmarks.md has the numbers).
 */
export function frameOnce(payload: Buffer | Uint8Array, binary: boolean): WireFrame {
  const list = Sender.frame(payload, { fin: true, rsv1: false, opcode: binary ? 2 : 1, mask: false, readOnly: false });
  return [Buffer.concat(list)];
}

/**
 * Whether {@link writeFramed} may be used on `ws` (decide once per connection): ws exposes its
 * sender's `sendFrame`, and no permessage-deflate was negotiated. Without compression, and as
 * long as the session never sends Blobs or fragments (it does not), ws's sender never queues a
 * frame (it queues only behind a compression or a Blob read), so writing beside it keeps the
 * order of every frame. With compression the session always uses `ws.send`.
 */
export function supportsFastWrite(ws: WebSocket): boolean {
  const sender = (ws as unknown as WithSender)._sender;
  return typeof sender?.sendFrame === 'function' && ws.extensions === '';
}

/**
 * Writes a frame built by {@link frameOnce} through ws's sender, coalesced with the socket's
 * other writes (`write-coalescer.ts`: this iteration, or a short batch window under load).
 * Only for a socket {@link supportsFastWrite} accepted; returns false,
 * writing nothing, when the socket is not open.
 */
export function writeFramed(ws: WebSocket, socket: Socket, wire: WireFrame): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  coalesceBroadcast(socket);
  (ws as unknown as Required<WithSender>)._sender!.sendFrame!(wire);
  return true;
}
