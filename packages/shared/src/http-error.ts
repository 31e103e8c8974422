import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpErrorCode } from '@herald/protocol';

/**
 * The one JSON body of every HTTP refusal of the worker and the balancer (docs/protocol.md,
 * "HTTP errors"): `{"error":{"code":"no_worker","message":"no healthy worker"}}`.
 */
export interface HttpErrorBody {
  error: {
    /** Machine-readable code from the catalog (`HttpErrorCode` of @herald/protocol). */
    code: HttpErrorCode;
    /** Human-readable text; may change between versions, unlike `code`. */
    message: string;
  };
}

/**
 * @param code - the catalog code
 * @param message - human-readable text
 * @returns the serialised {@link HttpErrorBody}
 */
export function httpErrorBody(code: HttpErrorCode, message: string): string {
  const body: HttpErrorBody = { error: { code, message } };
  return JSON.stringify(body);
}

/**
 * Answers a plain HTTP request with a JSON error, unless a response has already started (then
 * the connection is destroyed: a half-sent response cannot be repaired).
 *
 * @param res - the response
 * @param status - HTTP status
 * @param code - the catalog code
 * @param message - human-readable text
 * @param headers - extra response headers (`Retry-After`, `WWW-Authenticate`, …)
 */
export function sendError(res: ServerResponse, status: number, code: HttpErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = httpErrorBody(code, message);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

/**
 * Answers an upgrade request (or a request the HTTP parser rejected) on its raw socket, where
 * there is no ServerResponse, and closes it. The socket is destroyed once the answer is flushed,
 * or at once if it cannot be written, never left half-open.
 *
 * @param socket - the client socket
 * @param status - HTTP status
 * @param code - the catalog code
 * @param message - human-readable text
 * @param headers - extra response headers
 */
export function rejectUpgrade(socket: Duplex, status: number, code: HttpErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = httpErrorBody(code, message);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  destroyLater(socket);
}

/**
 * Destroys a socket if it is still open after `ms`: the backstop for an `end()` whose peer
 * never reads (the write never flushes, so its callback never comes).
 *
 * @param socket - the socket
 * @param ms - grace time. @default 1000
 */
export function destroyLater(socket: Duplex, ms = 1000): void {
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
