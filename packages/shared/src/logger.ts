import { pino, type Logger } from 'pino';
import { stdoutDestination } from './stdout-destination.js';

export type { Logger };

/**
 * Creates the process logger: JSON lines on stdout, written so that a stdout whose reader is
 * gone or stalled never hangs or crashes the process ({@link stdoutDestination}). Query strings
 * are stripped from logged URLs by the callers (`redactUrl`) because tokens may travel in `?token=`.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, redact: ['token', '*.token', 'headers.authorization'] }, stdoutDestination());
}

/** A URL path without its query string, safe to log. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}
