import { pino, type Logger } from 'pino';
import { stdoutDestination } from './stdout-destination.js';

export type { Logger };

/**
 * Creates the process logger: JSON lines on stdout, written so that a stdout whose reader is
 * gone or stalled never hangs or crashes the process ({@link stdoutDestination}). Query strings
 * are stripped from logged URLs by the callers (`redactUrl`) because tokens may travel in `?token=`.
 * Lines dropped because stdout took nothing are counted in a warning that follows
 * (`"dropped": n`).
 *
 * @param options.backlogBytes - see {@link StdoutOptions.backlogBytes} (`HERALD_LOG_BACKLOG_BYTES`). @default 1048576
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, options: { backlogBytes?: number } = {}): Logger {
  const logger: Logger = pino(
    { level, base: { pid: process.pid, ...bindings }, redact: ['token', '*.token', 'headers.authorization'] },
    stdoutDestination({
      backlogBytes: options.backlogBytes,
      // At warn, or at the logger's level when that is above warn: the dropped lines were at least that.
      onDropped: (dropped) => logger[logger.isLevelEnabled('warn') ? 'warn' : (logger.level as 'error' | 'fatal' | 'silent')]({ dropped }, 'log lines dropped: the stdout backlog was full'),
    }),
  );
  return logger;
}

/** A URL path without its query string, safe to log. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}
