import { pino, type DestinationStream } from 'pino';

/** Default of {@link StdoutOptions.backlogBytes} (`HERALD_LOG_BACKLOG_BYTES`): 1 MiB. */
export const DEFAULT_LOG_BACKLOG_BYTES = 1024 * 1024;

/** How soon a backlog that met a full stdout is tried again (and a count of dropped lines offered). */
const RETRY_MS = 1000;

/** Options of {@link stdoutDestination}. */
export interface StdoutOptions {
  /**
   * Bytes of log output held back while stdout takes nothing (a full pipe: the reader is slow
   * or stalled). A line that would grow the backlog past this is dropped. @default 1048576
   */
  backlogBytes?: number;
  /**
   * Told how many lines were dropped since the last call, at the next try of the backlog (a
   * second after a drop), to write a line that says so. If that line is dropped in turn, it is not
   * counted: its count goes into the next call. @default undefined (dropped lines are not reported)
   */
  onDropped?: (count: number) => void;
}

/**
 * Where the process logger writes: stdout, so that writing a log line never hangs the process
 * and never throws into its caller (docs/deploy.md, "Log output").
 *
 * - Each line is written synchronously with the call that logs it (sonic-boom `sync`), so the
 *   lines logged just before `process.exit()` ("drained", "stopped", a fatal error) are out
 *   already: nothing is left for an exit hook to flush. pino's default destination is async and
 *   flushes at exit with `SonicBoom.flushSync`, which retries every 100 ms, forever, on EPIPE
 *   (sonic-boom 4.2.1 rethrows only EAGAIN refused by `retryEAGAIN`) and on a pipe nobody reads:
 *   a SIGTERM'd `herald-worker | head -1` never exited.
 * - A full pipe answers EAGAIN (the fd is non-blocking, below) and is not retried in place
 *   (`retryEAGAIN` false: no `Atomics.wait` sleep on the main thread). The unwritten bytes stay
 *   in sonic-boom's buffer and go out, in order, ahead of the next line, or by themselves at the
 *   next try (once a second while they wait); past `backlogBytes` new lines are dropped
 *   (`maxLength`), so memory stays bounded, and counted: `onDropped` gets the count at the next
 *   try, so a gap in the log is never silent. What is still held back when the process exits is lost.
 * - EPIPE (the reader is gone): pino's own handler turns the destination into a no-op. Every
 *   write error lands in the `error` listener below and is ignored there: a logger with nowhere
 *   to write must not take the process down (an unhandled `error` event would).
 */
export function stdoutDestination(options: StdoutOptions = {}): DestinationStream {
  const destination = pino.destination({
    // process.stdout.fd rather than 1: creating process.stdout is what makes a pipe or socket
    // stdout non-blocking (libuv's uv_pipe_open), so a full pipe answers EAGAIN instead of
    // blocking the write (and the event loop) until a reader comes back.
    dest: process.stdout.fd,
    sync: true,
    maxLength: options.backlogBytes ?? DEFAULT_LOG_BACKLOG_BYTES,
    retryEAGAIN: () => false,
  });
  const { onDropped } = options;
  let dropped = 0;
  /** The count being reported right now: if its own line is dropped, it goes back into `dropped`. */
  let reporting = 0;
  let retry: NodeJS.Timeout | undefined;
  const scheduleRetry = () => {
    retry ??= setTimeout(retryAndReport, RETRY_MS).unref();
  };
  const retryAndReport = () => {
    retry = undefined;
    // sonic-boom writes its backlog only from a write() that is taken, and a full backlog takes
    // none: without this kick, a backlog filled during a long stall would never be written and
    // every later line would be dropped. An empty write is taken and tries the backlog; a pipe
    // still full answers EAGAIN, which lands in the `error` listener and schedules the next try.
    try {
      destination.write('');
    } catch {
      return; // destroyed: nowhere to write, nothing to report
    }
    if (dropped === 0 || !onDropped) return;
    reporting = dropped;
    dropped = 0;
    try {
      onDropped(reporting);
    } finally {
      reporting = 0;
    }
  };
  // Every write error lands here and is ignored (a logger with nowhere to write must not take
  // the process down); EAGAIN (the backlog waits) is retried later, see retryAndReport.
  destination.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EAGAIN' || err.code === 'EBUSY') return scheduleRetry();
    if (err.code !== 'EPIPE') return;
    // The reader is gone for good: stop writing (what pino's own EPIPE filter does, but that
    // filter removes itself at the first other error, e.g. an EAGAIN of an earlier stall). With
    // writes gone there are no drops and no EAGAIN, so no retry is scheduled again.
    clearTimeout(retry);
    retry = undefined;
    destination.write = () => true;
  });
  // sonic-boom emits `drop` synchronously, inside the write that could not be taken.
  destination.on('drop', () => {
    if (reporting > 0) {
      dropped += reporting;
      reporting = 0;
    } else {
      dropped++;
    }
    scheduleRetry();
  });
  return destination;
}
