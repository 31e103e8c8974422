#!/usr/bin/env node
/**
 * What users pick instead: Socket.IO v4 with `@socket.io/redis-adapter` (when `REDIS_URL`
 * is set), websocket transport only, default options otherwise.
 * Events: `echo` (answered with the same payload), `join` (room, with ack), `pub`
 * (room, payload: `io.to(room).emit('m', payload)`, cluster-wide through the adapter).
 * Prints `{"msg":"listening","port":N}` once listening. Env: `PORT` (0), `REDIS_URL`.
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';

const server = createServer();
const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
const redisUrl = process.env.REDIS_URL || undefined;
if (redisUrl) {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  pub.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', err: err.message })));
  sub.on('error', (err) => console.error(JSON.stringify({ msg: 'redis error', err: err.message })));
  io.adapter(createAdapter(pub, sub));
}
io.on('connection', (socket) => {
  socket.on('echo', (payload: unknown) => socket.emit('echo', payload));
  socket.on('join', (room: string, ack?: () => void) => {
    void socket.join(room);
    ack?.();
  });
  socket.on('pub', (room: string, payload: unknown) => {
    io.to(room).emit('m', payload);
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port }));
});
process.on('SIGTERM', () => process.exit(0));
