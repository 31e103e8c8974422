import { pino, type DestinationStream } from 'pino';

/**
 * Bytes of log output held back while stdout takes nothing (a full pipe: the reader is slow
 * or stalled). A line that would grow the backlog past this is dropped.
 */
const BACKLOG_BYTES = 1024 * 1024;

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
 * - A full pipe answers EAGAIN (the fd is non-blocking, below) and is not retried
 *   (`retryEAGAIN` false: no `Atomics.wait` sleep on the main thread). The unwritten bytes stay
 *   in sonic-boom's buffer and go out, in order, ahead of the next line; past
 *   {@link BACKLOG_BYTES} new lines are dropped (`maxLength`), so memory stays bounded. What is
 *   still held back when the process exits is lost.
 * - EPIPE (the reader is gone): pino's own handler turns the destination into a no-op. Every
 *   write error lands in the `error` listener below and is ignored there: a logger with nowhere
 *   to write must not take the process down (an unhandled `error` event would).
 */
export function stdoutDestination(): DestinationStream {
  const destination = pino.destination({
    // process.stdout.fd rather than 1: creating process.stdout is what makes a pipe or socket
    // stdout non-blocking (libuv's uv_pipe_open), so a full pipe answers EAGAIN instead of
    // blocking the write (and the event loop) until a reader comes back.
    dest: process.stdout.fd,
    sync: true,
    maxLength: BACKLOG_BYTES,
    retryEAGAIN: () => false,
  });
  destination.on('error', () => undefined);
  return destination;
}
