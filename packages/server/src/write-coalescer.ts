/**
 * Write coalescing for every socket of the process: frames written to a socket while it is
 * corked leave in one writev instead of one syscall each. On loopback and LAN the syscall (and
 * the receiver wake-up it causes) is most of a delivery's cost — about 70 % of a fan-out
 * worker's CPU in a profile (docs/benchmarks.md) — so fewer writes per delivered frame is what
 * lowers CPU per delivery.
 *
 * Two flush points:
 * - **end of the event-loop iteration** (setImmediate): replies, echoes, and broadcasts while the
 *   worker is quiet. Costs no latency.
 * - **a short batch window** (`windowMs`, default 8 ms) for broadcasts while the worker fans out
 *   more than `minFramesPerSec` broadcast frames per second: the messages of several publishes
 *   share each socket's write. This trades at most `windowMs` of latency for CPU, like
 *   centrifuge's write delay, but only under load, where the syscalls saved are what keeps the
 *   latency from growing further.
 *
 * Order is kept whatever the flush point: a socket is corked once, and every frame written to
 * it meanwhile (replies included) joins the same buffer. Process-wide (one worker per process).
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** When broadcasts wait for a batch window (see the file comment). */
export interface WriteBatchOptions {
  /** Longest a broadcast frame waits to share a write; 0 turns batching off. Default 8 ms. */
  windowMs: number;
  /** Broadcast frames per second (to all sockets of the worker) above which batching is on; 0 = always. Default 10,000. */
  minFramesPerSec: number;
}

/** Defaults of {@link WriteBatchOptions} (`HERALD_WRITE_BATCH_MS`, `HERALD_WRITE_BATCH_MIN_RATE`). */
export const DEFAULT_WRITE_BATCH: Readonly<WriteBatchOptions> = { windowMs: 8, minFramesPerSec: 10_000 };

/**
 * Bytes a corked socket may hold before it is flushed early. Small next to the send-buffer limit
 * (1 MiB by default), so coalescing barely moves the point where a slow consumer is closed with 4008.
 */
const COALESCE_MAX_BYTES = 16 * 1024;

/** How often the broadcast rate is re-evaluated. */
const RATE_SAMPLE_MS = 100;

let options: WriteBatchOptions = { ...DEFAULT_WRITE_BATCH };
/** Sockets flushed at the end of this iteration. */
let untilImmediate: Socket[] = [];
/** Sockets flushed when the open batch window closes. */
let untilWindow: Socket[] = [];
let windowTimer: NodeJS.Timeout | null = null;
let frames = 0;
let rateSince = performance.now();
let busy = false;

/** Sets the batch window of this process (the worker calls it at start from its config). */
export function configureWriteBatching(next: WriteBatchOptions): void {
  options = { ...next };
  frames = 0;
  rateSince = performance.now();
  busy = options.windowMs > 0 && options.minFramesPerSec === 0;
}

/** Lets a reply written to `socket` in this iteration leave with the others (call before `ws.send`). */
export function coalesceWrites(socket: Socket): void {
  if (joinCorked(socket) || socket.writableLength > 0) return;
  socket.cork();
  scheduleImmediate(socket);
}

/** Like {@link coalesceWrites} for a broadcast frame: it may wait for the batch window under load. */
export function coalesceBroadcast(socket: Socket): void {
  frames++;
  if (joinCorked(socket) || socket.writableLength > 0) return;
  socket.cork();
  if (windowTimer !== null || fanOutBusy()) {
    if (windowTimer === null) windowTimer = setTimeout(flushWindow, options.windowMs);
    untilWindow.push(socket);
  } else {
    scheduleImmediate(socket);
  }
}

/**
 * True when `socket` is corked already (its frame joins the pending flush). A socket with
 * enough waiting is let go now instead of growing the user-space buffer (and the bufferedAmount
 * the slow-consumer check reads) with a large burst.
 */
function joinCorked(socket: Socket): boolean {
  if (socket.writableCorked === 0) return false;
  if (socket.writableLength >= COALESCE_MAX_BYTES) {
    socket.uncork();
    socket.cork();
  }
  return true;
}

/**
 * A socket with bytes already waiting for the kernel is a slow reader: coalescing would not
 * save a syscall there, and it must not make its bufferedAmount look larger than it is — which
 * is why the callers above skip sockets with `writableLength > 0`.
 */
function scheduleImmediate(socket: Socket): void {
  if (untilImmediate.push(socket) === 1) setImmediate(flushImmediate);
}

/** Whether the broadcast rate of the last sample is above the threshold (re-sampled every 100 ms). */
function fanOutBusy(): boolean {
  if (options.windowMs === 0) return false;
  if (options.minFramesPerSec === 0) return true;
  const now = performance.now();
  const elapsed = now - rateSince;
  if (elapsed >= RATE_SAMPLE_MS) {
    busy = (frames * 1000) / elapsed >= options.minFramesPerSec;
    frames = 0;
    rateSince = now;
  }
  return busy;
}

function flushImmediate(): void {
  const sockets = untilImmediate;
  untilImmediate = [];
  for (const s of sockets) s.uncork();
}

function flushWindow(): void {
  windowTimer = null;
  const sockets = untilWindow;
  untilWindow = [];
  for (const s of sockets) s.uncork();
}
