import type { Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { rejectUpgrade } from './http-error.js';

/** What a plain HTTP request sent to a TLS port is told (400 `bad_request`). */
export const PLAIN_HTTP_ON_TLS_MESSAGE = 'this port speaks TLS: use https:// or wss://';

/**
 * Makes a TLS server (the worker's or the balancer's `https.Server`) answer a plain HTTP request
 * with `400 bad_request` ({@link PLAIN_HTTP_ON_TLS_MESSAGE}, the JSON body of every HTTP refusal)
 * instead of an empty reply, as nginx does ("The plain HTTP request was sent to HTTPS port").
 * Call it right after creating the server, before adding `connection` listeners of your own.
 *
 * How: the first bytes of each connection are looked at before TLS gets the socket. An HTTP
 * request starts with its method, an upper-case ASCII letter; a TLS ClientHello starts with a
 * handshake record (0x16). Only the first kind is answered here; anything else goes to TLS
 * unchanged (Node's TLSSocket takes bytes already read from the socket, see `initRead` in
 * `_tls_wrap.js`), which refuses what is not TLS as before.
 *
 * The TLS handshake timeout starts only when TLS gets the socket, so a connection that sends
 * nothing is closed here after `firstBytesTimeoutMs` instead.
 *
 * @param server - the TLS server, with only its own `connection` listener so far
 * @param firstBytesTimeoutMs - longest wait for a connection's first bytes (use the handshake timeout)
 */
export function answerPlainHttpOnTls(server: TlsServer, firstBytesTimeoutMs: number): void {
  const tlsListeners = server.listeners('connection') as Array<(this: TlsServer, socket: Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    // 0 or less: no deadline here (as for Node's own handshakeTimeout of 0).
    const timer = firstBytesTimeoutMs > 0 ? setTimeout(() => socket.destroy(), firstBytesTimeoutMs).unref() : undefined;
    // Until TLS has the socket, its errors (a reset before the first byte) are this code's to absorb.
    const onError = () => socket.destroy();
    socket.on('error', onError);
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      const first = chunk[0]!;
      if (first >= 0x41 && first <= 0x5a) {
        rejectUpgrade(socket, 400, 'bad_request', PLAIN_HTTP_ON_TLS_MESSAGE);
        return;
      }
      socket.removeListener('error', onError);
      socket.unshift(chunk);
      for (const listener of tlsListeners) listener.call(server, socket);
    });
  });
}
