/**
 * Error codes meaning the TCP connection to a worker could not be opened: nothing reached the
 * worker, so the request can go to another one and the worker can be marked down at once.
 */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * @param error - an error from a request to a worker
 * @returns whether the connection to the worker was never established
 */
export function isConnectError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && CONNECT_ERRORS.has(code);
}

/**
 * @param error - any error
 * @returns its `code`, or its message when it has none
 */
export function errorCode(error: unknown): string {
  const e = error as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(error);
}

/** Marks a handshake that the balancer gave up on (`HERALD_HANDSHAKE_TIMEOUT_MS`). */
export class HandshakeTimeoutError extends Error {
  override readonly name = 'HandshakeTimeoutError';
  readonly code = 'HANDSHAKE_TIMEOUT';
}
