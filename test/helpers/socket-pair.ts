import { once } from 'node:events';
import net from 'node:net';

/**
 * Two ends of one loopback TCP connection (the dialed socket, then the accepted one), each with
 * an `error` listener; the listening server is closed again.
 */
export async function connectedPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const dialed = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(dialed, 'connect');
  const [socket] = await accepted;
  server.close();
  for (const s of [dialed, socket]) s.on('error', () => undefined);
  return [dialed, socket];
}
