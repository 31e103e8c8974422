import { WebSocket } from 'ws';
import { io, type Socket } from 'socket.io-client';
import type { Proto } from './protocol.js';
import { stampOf } from './payload.js';

/** A subscribed connection held by an agent. */
export interface Subscriber {
  close(): void;
}

/** A connection that publishes payloads to the benchmark channel. */
export interface Publisher {
  publish(payload: string): void;
  close(): void;
}

const DATA_KEY = '"data":"';
const HANDSHAKE_MS = 15_000;

/**
 * Opens a connection of `proto` to `base` (`ws://host:port`, or `http://` for Socket.IO),
 * subscribes it to `channel`, and resolves once the subscription is confirmed.
 * `onStamp` gets the send time of every message; `onClose` fires if it closes afterwards.
 */
export function openSubscriber(proto: Proto, base: string, channel: string, onStamp: (ms: number) => void, onClose: () => void): Promise<Subscriber> {
  if (proto === 'socketio') return openSocketIo(base, (socket, ready) => {
    socket.on('m', (payload: string) => onStamp(stampOf(payload)));
    socket.emit('join', channel, ready);
  }, onClose);
  const ws = new WebSocket(`${base}/${proto === 'herald' ? 'ws' : 'sub'}`, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_MS });
  return new Promise((resolve, reject) => {
    let subscribed = false;
    const fail = (err: Error) => {
      if (subscribed) return;
      ws.terminate();
      reject(err);
    };
    const done = () => {
      subscribed = true;
      resolve({ close: () => ws.close() });
    };
    ws.on('error', fail);
    ws.on('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('close', () => (subscribed ? onClose() : fail(new Error('closed before subscribed'))));
    if (proto === 'ws') {
      ws.once('open', done);
      ws.on('message', (data) => onStamp(stampOf((data as Buffer).toString('latin1'))));
      return;
    }
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel, id: 1 })));
    ws.on('message', (data) => {
      // latin1: the payload is ASCII, and latin1 decoding is the cheapest.
      const text = (data as Buffer).toString('latin1');
      const at = text.indexOf(DATA_KEY);
      if (at >= 0 && subscribed) return onStamp(stampOf(text, at + DATA_KEY.length));
      if (!subscribed && text.includes('"type":"ack"')) done();
      else if (!subscribed && text.includes('"type":"error"')) fail(new Error(`subscribe refused: ${text}`));
    });
  });
}

/** Opens a publishing connection of `proto` to `base`. */
export function openPublisher(proto: Proto, base: string, channel: string): Promise<Publisher> {
  if (proto === 'socketio') {
    return openSocketIo(base, (_socket, ready) => ready(), () => undefined).then(({ socket }) => ({
      publish: (payload: string) => void socket.emit('pub', channel, payload),
      close: () => socket.close(),
    }));
  }
  const ws = new WebSocket(`${base}/${proto === 'herald' ? 'ws' : 'pub'}`, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_MS });
  // Herald frames are built by hand around the payload: the bench is not allowed to be the
  // bottleneck, and JSON.stringify per message would cost more than the server's work.
  const prefix = `{"type":"publish","channel":${JSON.stringify(channel)},"data":"`;
  const encode = proto === 'herald' ? (p: string) => `${prefix}${p}"}` : (p: string) => p;
  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => undefined);
      resolve({
        publish: (payload: string) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(encode(payload));
        },
        close: () => ws.close(),
      });
    });
  });
}

function openSocketIo(base: string, setup: (socket: Socket, ready: () => void) => void, onClose: () => void): Promise<Subscriber & { socket: Socket }> {
  const socket = io(base, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: HANDSHAKE_MS });
  return new Promise((resolve, reject) => {
    let ready = false;
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () =>
      setup(socket, () => {
        ready = true;
        resolve({ socket, close: () => socket.close() });
      }),
    );
    socket.on('disconnect', (reason) => {
      if (ready) onClose();
      else reject(new Error(`disconnected before ready: ${reason}`));
    });
  });
}
