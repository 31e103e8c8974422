import type { Proto } from './protocol.js';
import { RawWs, frame, readNumber } from './raw-ws.js';

/** A subscribed connection held by an agent. */
export interface Subscriber {
  close(): void;
}

/** A connection that publishes payloads to the benchmark channel. */
export interface Publisher {
  publish(payload: string): void;
  /** Whether the server closed the connection (its publishes since then went nowhere). */
  readonly closed: boolean;
  close(): void;
}

/**
 * Where the payload starts inside a delivered frame, per protocol: Herald's `message` frame
 * (`…"data":"<stamp>|…`), Socket.IO's event packet (`42["m","<stamp>|…`), or the bare
 * payload (bare ws).
 */
const STAMP_KEY: Record<Proto, Buffer | null> = {
  herald: Buffer.from('"data":"'),
  socketio: Buffer.from('["m","'),
  ws: null,
};

/** Socket.IO over a raw WebSocket: the Engine.IO v4 path and packet prefixes. */
const SIO_PATH = '/socket.io/?EIO=4&transport=websocket';

/** URL of the endpoint a connection of `proto` uses on `base` (`ws://host:port`). */
function endpoint(proto: Proto, base: string, role: 'sub' | 'pub'): string {
  if (proto === 'herald') return `${base}/ws`;
  if (proto === 'socketio') return `${base}${SIO_PATH}`;
  return `${base}/${role}`;
}

/**
 * Opens a connection of `proto` to `base`, subscribes it to `channel` and resolves once the
 * subscription is confirmed. Every protocol goes through the same {@link RawWs} client so the
 * client-side cost is the same for each server. `onStamp` gets each message's send time.
 */
export function openSubscriber(proto: Proto, base: string, channel: string, onStamp: (ms: number) => void, onClose: () => void, localAddress?: string): Promise<Subscriber> {
  const key = STAMP_KEY[proto];
  return new Promise((resolve, reject) => {
    let ready = false;
    let ws: RawWs | undefined;
    const done = () => {
      ready = true;
      resolve({ close: () => ws!.close() });
    };
    const fail = (why: string) => {
      if (ready) return;
      ws?.close();
      reject(new Error(why));
    };
    const onFrame = (_op: number, buf: Buffer, start: number, end: number, c: RawWs) => {
      ws = c;
      if (ready) {
        if (key === null) return onStamp(readNumber(buf, start, end));
        const at = buf.indexOf(key, start);
        if (at >= 0 && at < end) return onStamp(readNumber(buf, at + key.length, end));
        if (proto === 'socketio' && end - start === 1 && buf[start] === 0x32) ws!.send('3'); // Engine.IO ping → pong
        return;
      }
      const text = buf.toString('latin1', start, end);
      if (proto === 'herald') {
        if (text.includes('"type":"welcome"')) ws!.send(JSON.stringify({ type: 'subscribe', channel, id: 1 }));
        else if (text.includes('"type":"ack"')) done();
        else if (text.includes('"type":"error"')) fail(`subscribe refused: ${text}`);
      } else if (proto === 'socketio') {
        if (text.startsWith('0{')) ws!.send('40');
        else if (text.startsWith('40')) ws!.send(`420${JSON.stringify(['join', channel])}`);
        else if (text.startsWith('430')) done();
        else if (text.startsWith('44')) fail(`connect refused: ${text}`);
      }
    };
    RawWs.connect(endpoint(proto, base, 'sub'), onFrame, () => (ready ? onClose() : fail('closed before subscribed')), 15_000, localAddress).then(
      (c) => {
        ws = c;
        if (proto === 'ws') done();
      },
      (err: Error) => reject(err),
    );
  });
}

/** Opens a publishing connection of `proto` to `base`. */
export function openPublisher(proto: Proto, base: string, channel: string): Promise<Publisher> {
  // Frames are built by hand around the payload: the load generator must stay cheaper than the
  // server, and JSON.stringify per message would cost more than the server's work.
  const prefix =
    proto === 'herald' ? `{"type":"publish","channel":${JSON.stringify(channel)},"data":"` : proto === 'socketio' ? `42["pub",${JSON.stringify(channel)},"` : '';
  const suffix = proto === 'herald' ? '"}' : proto === 'socketio' ? '"]' : '';
  return new Promise((resolve, reject) => {
    let ws: RawWs | undefined;
    let ready = false;
    let closed = false;
    const done = () => {
      ready = true;
      resolve({
        publish: (p) => ws!.sendFramed(frame(prefix + p + suffix)),
        get closed() {
          return closed;
        },
        close: () => ws!.close(),
      });
    };
    const onFrame = (_op: number, buf: Buffer, start: number, end: number, c: RawWs) => {
      ws = c;
      if (proto !== 'socketio') return;
      const text = buf.toString('latin1', start, end);
      if (text === '2') ws!.send('3');
      else if (!ready && text.startsWith('0{')) ws!.send('40');
      else if (!ready && text.startsWith('40')) done();
    };
    RawWs.connect(endpoint(proto, base, 'pub'), onFrame, () => (closed = true)).then(
      (c) => {
        ws = c;
        if (proto !== 'socketio') done();
      },
      (err: Error) => reject(err),
    );
  });
}
