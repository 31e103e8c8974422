import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Error codes in the balancer's own JSON error bodies.
 * - `no_worker` (503): no healthy worker
 * - `bad_gateway` (502): the chosen worker failed
 * - `gateway_timeout` (504): the chosen worker did not answer in time
 * - `too_many_connections` (429): per-IP cap reached
 * - `over_capacity` (503): the balancer's total tunnel cap is reached
 * - `bad_request` (400): an upgrade that is not a WebSocket upgrade
 * - `shutting_down` (503): the balancer is draining
 */
export type BalancerErrorCode =
  | 'no_worker'
  | 'bad_gateway'
  | 'gateway_timeout'
  | 'too_many_connections'
  | 'over_capacity'
  | 'bad_request'
  | 'shutting_down';

/**
 * Answers a plain HTTP request with a JSON error, unless a response has already started (then
 * the connection is destroyed: a half-sent response cannot be repaired).
 *
 * @param res - the response
 * @param status - HTTP status
 * @param code - machine-readable code
 * @param message - human-readable text
 */
export function sendError(res: ServerResponse, status: number, code: BalancerErrorCode, message: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, message });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * Answers an upgrade request on its raw socket and closes it. The socket is destroyed once the
 * answer is flushed (or at once if it cannot be), never left half-open.
 *
 * @param socket - the client socket of the upgrade
 * @param status - HTTP status
 * @param code - machine-readable code
 * @param message - human-readable text
 */
export function rejectUpgrade(socket: Duplex, status: number, code: BalancerErrorCode, message: string): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, message });
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.end(head + body, () => socket.destroy());
  destroyLater(socket);
}

/**
 * Destroys a socket if it is still open after `ms` — the backstop for an `end()` whose peer
 * never reads (the write never flushes, so `finish` never comes).
 *
 * @param socket - the socket
 * @param ms - grace time @default 1000
 */
export function destroyLater(socket: Duplex, ms = 1000): void {
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
