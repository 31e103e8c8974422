#!/usr/bin/env node
/**
 * Socket.IO v4 with connection state recovery on `@socket.io/redis-streams-adapter` (the
 * adapter that keeps the packets a disconnected client missed, in a Redis stream, so any server
 * can replay them): the comparator of the `jitter` and `deploy` scenarios. Websocket transport only.
 * Events: `join` (room, with ack), `pub` (room, payload, with ack: `io.to(room).emit('m', payload)`);
 * on connection the server emits `hello` `{node, recovered}`. `GET /readyz` answers 200 (the
 * balancer's health check). Prints `{"msg":"listening","port":N}`. Env: `PORT` (0), `REDIS_URL`
 * (required), `NODE_ID`.
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';

const node = process.env.NODE_ID || `sio-${process.pid}`;
const server = createServer((req, res) => {
  if (req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ready: true, node }));
  }
});
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
redis.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', err: err.message })));
const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  adapter: createAdapter(redis),
  // Socket.IO's documented setting; 2 min covers any cut or restart of the scenarios.
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
});
io.on('connection', (socket) => {
  socket.emit('hello', { node, recovered: socket.recovered });
  socket.on('join', (room: string, ack?: () => void) => {
    void socket.join(room);
    ack?.();
  });
  socket.on('pub', (room: string, payload: unknown, ack?: () => void) => {
    io.to(room).emit('m', payload);
    ack?.();
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port }));
});
// What a Socket.IO app does by default on SIGTERM: exit (clients see the transport close).
process.on('SIGTERM', () => process.exit(0));
