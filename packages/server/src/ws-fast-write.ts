/**
 * The fast write path of `/ws`: a broadcast is framed once, with ws's own `Sender.frame()`, and
 * the same bytes are handed to every subscriber's ws sender; frames written to a socket during
 * one event-loop iteration leave in one writev.
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
 * Writes a frame built by {@link frameOnce} through ws's sender, coalesced with the other
 * writes of this iteration. Only for a socket {@link supportsFastWrite} accepted; returns false,
 * writing nothing, when the socket is not open.
 */
export function writeFramed(ws: WebSocket, socket: Socket, wire: WireFrame): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  corkUntilImmediate(socket);
  (ws as unknown as Required<WithSender>)._sender!.sendFrame!(wire);
  return true;
}

/**
 * Lets the frames `ws.send` writes to `socket` during this event-loop iteration leave together
 * (see {@link corkUntilImmediate}); call it before `ws.send`.
 */
export function coalesceWrites(socket: Socket): void {
  corkUntilImmediate(socket);
}

/**
 * Bytes a corked socket may hold before {@link corkUntilImmediate} flushes it early. Small
 * next to the send-buffer limit (1 MiB by default), so coalescing barely moves the point
 * where a slow consumer is closed with 4008.
 */
const COALESCE_MAX_BYTES = 16 * 1024;

/** Sockets corked by {@link corkUntilImmediate}, uncorked together in the next check phase. */
let corked: Socket[] = [];

/**
 * Corks `socket` until the end of this event-loop iteration (setImmediate), so every frame
 * written to it meanwhile — several broadcasts decoded from one Redis read, several publishes
 * read in one poll phase — leaves in one writev instead of one syscall each. Under light load
 * a socket gets one frame per iteration and this costs a cork/uncork pair; under heavy load it
 * is what keeps the syscall count per delivery below one. Frames of ws.send in between go into
 * the same corked buffer, so order is kept.
 */
function corkUntilImmediate(socket: Socket): void {
  if (socket.writableCorked > 0) {
    // Enough is waiting: let it go now instead of growing the user-space buffer (and the
    // bufferedAmount the slow-consumer check reads) with a large burst.
    if (socket.writableLength >= COALESCE_MAX_BYTES) {
      socket.uncork();
      socket.cork();
    }
    return;
  }
  // A socket with bytes already waiting for the kernel is a slow reader: coalescing would not
  // save a syscall there, and it must not make its bufferedAmount look larger than it is.
  if (socket.writableLength > 0) return;
  socket.cork();
  if (corked.push(socket) === 1) setImmediate(uncorkAll);
}

function uncorkAll(): void {
  const sockets = corked;
  corked = [];
  for (const s of sockets) s.uncork();
}
