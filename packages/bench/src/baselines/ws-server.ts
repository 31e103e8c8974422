#!/usr/bin/env node
/**
 * The floor of this stack: a bare `ws` server with no protocol of its own.
 * - `/echo` sends every message back with the same opcode.
 * - `/sub` connections receive every broadcast; `/pub` connections broadcast what they send.
 *   With `REDIS_URL` set, a broadcast goes through one Redis channel so it reaches the `/sub`
 *   connections of every process, like a Herald cluster; without it, it stays in the process.
 * Prints `{"msg":"listening","port":N}` once listening. Env: `PORT` (0), `REDIS_URL`.
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { WebSocketServer, WebSocket } from 'ws';

const CHANNEL = 'bench:ws-baseline';
const subscribers = new Set<WebSocket>();
const redisUrl = process.env.REDIS_URL || undefined;

function broadcast(data: Buffer, binary: boolean): void {
  for (const ws of subscribers) if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary });
}

let publish: (data: Buffer, binary: boolean) => void = broadcast;
if (redisUrl) {
  const pub = new Redis(redisUrl, { lazyConnect: false });
  const sub = new Redis(redisUrl);
  pub.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', err: err.message })));
  sub.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', err: err.message })));
  await sub.subscribe(CHANNEL);
  // First byte carries the opcode so text stays text across processes.
  sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => broadcast(message.subarray(1), message[0] === 1));
  publish = (data, binary) => void pub.publish(CHANNEL, Buffer.concat([Buffer.from([binary ? 1 : 0]), data])).catch(() => undefined);
}

const server = createServer((_req, res) => res.writeHead(200).end('ok'));
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, maxPayload: 1 << 20 });
wss.on('connection', (ws, req) => {
  ws.on('error', () => undefined);
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/sub') {
    subscribers.add(ws);
    ws.once('close', () => subscribers.delete(ws));
  } else if (path === '/pub') {
    ws.on('message', (data, isBinary) => publish(data as Buffer, isBinary));
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port }));
});
process.on('SIGTERM', () => process.exit(0));
