import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeServerFrame, type ServerFrame } from '@herald/protocol';

/** One connection accepted by a {@link ScriptedWsServer}, with everything it received. */
export interface ScriptedConnection {
  socket: WebSocket;
  /** Request URL of the upgrade (path + query). */
  url: string;
  /** Value of the Sec-WebSocket-Protocol request header, if any. */
  protocols: string | undefined;
  /** Parsed text frames received, in order. */
  frames: Record<string, unknown>[];
  /** Binary frames received, in order. */
  binaries: Buffer[];
  /** Sends a server frame. */
  send(frame: ServerFrame): void;
}

/**
 * A real `ws` server on 127.0.0.1:0 whose behaviour each test scripts: it can send a
 * `welcome` on connect, answer frames through `onFrame`, close with any code. Used for the
 * client's state-machine tests, where the server must misbehave on purpose (never answer a
 * ping, close with 4001, replay a message) in ways the real worker never would.
 */
export class ScriptedWsServer {
  readonly connections: ScriptedConnection[] = [];
  /** Called for each text frame; default: answer pings with pong, everything with an id with an ack. */
  onFrame: (conn: ScriptedConnection, frame: Record<string, unknown>) => void = defaultAnswer;
  /** Sends a welcome as soon as a connection opens. */
  autoWelcome = true;
  /** Selects a subprotocol when the client offers some (like the worker does with `herald.v1`). */
  selectProtocol = (offered: Set<string>): string | false => (offered.has('herald.v1') ? 'herald.v1' : false);
  readonly #wss: WebSocketServer;
  #onConnection: ((conn: ScriptedConnection) => void)[] = [];

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
    wss.on('error', () => {});
    wss.on('connection', (socket, req) => {
      socket.on('error', () => {});
      const conn: ScriptedConnection = {
        socket,
        url: req.url ?? '',
        protocols: req.headers['sec-websocket-protocol'],
        frames: [],
        binaries: [],
        send: (frame) => socket.send(encodeServerFrame(frame)),
      };
      this.connections.push(conn);
      socket.on('message', (data, isBinary) => {
        if (isBinary) {
          conn.binaries.push(Buffer.from(data as Buffer));
          return;
        }
        const frame = JSON.parse(String(data)) as Record<string, unknown>;
        conn.frames.push(frame);
        this.onFrame(conn, frame);
      });
      if (this.autoWelcome) {
        conn.send({ type: 'welcome', conn: `c${this.connections.length}`, node: 'scripted', user: null, heartbeat: 25000 });
      }
      const waiters = this.#onConnection;
      this.#onConnection = [];
      for (const fn of waiters) fn(conn);
    });
  }

  /** Starts a server on 127.0.0.1 and a free port. */
  static async start(): Promise<ScriptedWsServer> {
    let server: ScriptedWsServer | undefined;
    const wss: WebSocketServer = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (offered: Set<string>): string | false => server!.selectProtocol(offered),
    });
    server = new ScriptedWsServer(wss);
    await once(wss, 'listening');
    return server;
  }

  /** `ws://127.0.0.1:<port>/ws`. */
  get url(): string {
    return `ws://127.0.0.1:${(this.#wss.address() as AddressInfo).port}/ws`;
  }

  /** Resolves with the n-th connection (1-based) once it exists. */
  connection(n: number, timeout = 5000): Promise<ScriptedConnection> {
    if (this.connections.length >= n) return Promise.resolve(this.connections[n - 1]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection #${n} did not arrive within ${timeout} ms`)), timeout);
      const check = () => {
        if (this.connections.length >= n) {
          clearTimeout(timer);
          resolve(this.connections[n - 1]!);
        } else this.#onConnection.push(check);
      };
      this.#onConnection.push(check);
    });
  }

  /** Closes every connection and the server. */
  async close(): Promise<void> {
    for (const c of this.connections) c.socket.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function defaultAnswer(conn: ScriptedConnection, frame: Record<string, unknown>): void {
  if (frame.type === 'ping') return conn.send({ type: 'pong' });
  if (typeof frame.id !== 'number') return;
  if (frame.type === 'subscribe') return conn.send({ type: 'ack', id: frame.id, offset: 0, epoch: 'e1', recovered: false });
  if (frame.type === 'presence') return conn.send({ type: 'ack', id: frame.id, members: [] });
  conn.send({ type: 'ack', id: frame.id });
}
