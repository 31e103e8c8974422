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
 *   latency from growing further. While the event loop is busy (utilisation above 30 %), the
 *   window grows towards `maxWindowMs` (default 32 ms): there frames already wait behind the
 *   work, and the longer window is what removes work.
 *
 * Order is kept whatever the flush point: a socket is corked once, and every frame written to
 * it meanwhile (replies included) joins the same buffer. Process-wide (one worker per process).
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** When broadcasts wait for a batch window (see the file comment). */
export interface WriteBatchOptions {
  /** Longest a broadcast frame waits to share a write while the event loop has room; 0 turns batching off. Default 8 ms. */
  windowMs: number;
  /**
   * Longest window while the event loop is busy: between {@link BUSY_FROM} and {@link BUSY_FULL}
   * event-loop utilisation the window grows linearly from `windowMs` to this. At or below
   * `windowMs` (or unset), the window is fixed. Default 32 ms.
   */
  maxWindowMs?: number;
  /** Broadcast frames per second (to all sockets of the worker) above which batching is on; 0 = always. Default 10,000. */
  minFramesPerSec: number;
}

/** Defaults of {@link WriteBatchOptions} (`HERALD_WRITE_BATCH_MS`, `HERALD_WRITE_BATCH_MAX_MS`, `HERALD_WRITE_BATCH_MIN_RATE`). */
export const DEFAULT_WRITE_BATCH: Readonly<Required<WriteBatchOptions>> = { windowMs: 8, maxWindowMs: 32, minFramesPerSec: 10_000 };

/** Event-loop utilisation (0–1, over the last sample) from which the window grows. */
export const BUSY_FROM = 0.3;
/** Event-loop utilisation at which the window reaches `maxWindowMs`. */
export const BUSY_FULL = 0.6;

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
/** The window of the current sample: `windowMs`, or longer while the loop is busy. */
let currentWindowMs = options.windowMs;
let elu = performance.eventLoopUtilization();

/** Sets the batch window of this process (the worker calls it at start from its config). */
export function configureWriteBatching(next: WriteBatchOptions): void {
  options = { ...next };
  frames = 0;
  rateSince = performance.now();
  busy = options.windowMs > 0 && options.minFramesPerSec === 0;
  currentWindowMs = options.windowMs;
  elu = performance.eventLoopUtilization();
}

/** The batch window broadcasts wait for now, in ms (re-evaluated every 100 ms). */
export function currentWriteWindowMs(): number {
  return currentWindowMs;
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
    if (windowTimer === null) windowTimer = setTimeout(flushWindow, currentWindowMs);
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
  const now = performance.now();
  const elapsed = now - rateSince;
  if (elapsed >= RATE_SAMPLE_MS) {
    busy = options.minFramesPerSec === 0 || (frames * 1000) / elapsed >= options.minFramesPerSec;
    frames = 0;
    rateSince = now;
    currentWindowMs = windowFor(loopUtilisation());
  }
  return busy;
}

/** Event-loop utilisation since the last call (0–1). */
function loopUtilisation(): number {
  const next = performance.eventLoopUtilization();
  const { utilization } = performance.eventLoopUtilization(next, elu);
  elu = next;
  return utilization;
}

/**
 * The window for a loop this busy: `windowMs` up to {@link BUSY_FROM}, then linearly longer, to
 * `maxWindowMs` at {@link BUSY_FULL}. Why grow it: a loop that busy makes frames wait anyway
 * (they queue behind the work), and a longer window cuts that work — each syscall saved is CPU
 * the loop gets back — so latency under load falls rather than rises.
 */
export function windowFor(utilisation: number): number {
  const { windowMs, maxWindowMs = windowMs } = options;
  if (maxWindowMs <= windowMs) return windowMs;
  const share = Math.min(1, Math.max(0, (utilisation - BUSY_FROM) / (BUSY_FULL - BUSY_FROM)));
  return Math.round(windowMs + share * (maxWindowMs - windowMs));
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
