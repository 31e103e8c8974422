import type { WebSocket } from 'ws';
import { CloseCode } from '@herald/protocol';

/** setTimeout's longest delay; later expiries are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Closes `ws` with 4001 `token expired` at `expiresAt` (ms since epoch), for connections
 * without a session of their own (`/echo`). The timer goes away with the socket.
 */
export function closeAtExpiry(ws: WebSocket, expiresAt: number | undefined): void {
  if (expiresAt === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const ms = expiresAt - Date.now();
    if (ms <= 0) return ws.close(CloseCode.Unauthorized, 'token expired');
    timer = setTimeout(arm, Math.min(ms, MAX_TIMER_MS));
    timer.unref();
  };
  ws.once('close', () => clearTimeout(timer));
  arm();
}
