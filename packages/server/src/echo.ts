import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { CloseCode } from '@herald/protocol';
import type { Logger } from '@herald/shared';
import { coalesceWrites } from './write-coalescer.js';
import { closeWithGrace } from './close.js';
import type { Metrics } from './metrics.js';

/**
 * `/echo`: every message goes back with the same opcode (text stays text, binary stays
 * binary). A peer that does not read its echoes is closed with 4008 once its send buffer
 * passes `sendBufferBytes`, so memory stays bounded. `socket` is the upgrade's socket (the one ws
 * writes to), for write coalescing.
 */
export function handleEcho(ws: WebSocket, socket: Socket, opts: { sendBufferBytes: number; closeGraceMs: number; log: Logger; metrics: Metrics }): void {
  opts.metrics.connections.inc({ endpoint: 'echo' });
  ws.on('message', (data, isBinary) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    // Echoes of the frames read in one chunk leave in one write (docs/benchmarks.md, echo).
    coalesceWrites(socket);
    ws.send(data, { binary: isBinary });
    if (ws.bufferedAmount > opts.sendBufferBytes) {
      opts.metrics.closes.inc({ code: String(CloseCode.SlowConsumer) });
      closeWithGrace(ws, CloseCode.SlowConsumer, 'slow consumer', opts.closeGraceMs);
    }
  });
  ws.on('error', (err) => opts.log.debug({ err }, 'echo socket error'));
  ws.once('close', () => opts.metrics.connections.dec({ endpoint: 'echo' }));
}
