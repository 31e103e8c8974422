import type { WebSocket } from 'ws';

/**
 * Closes `ws` with `code`, and terminates it when the peer has not completed the close within
 * `graceMs` — a peer that stopped reading never takes the close frame, and must not hold its
 * socket and send buffer for ws's own 30 s close timeout.
 */
export function closeWithGrace(ws: WebSocket, code: number, reason: string, graceMs: number): void {
  ws.close(code, reason);
  const timer = setTimeout(() => ws.terminate(), graceMs);
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}
