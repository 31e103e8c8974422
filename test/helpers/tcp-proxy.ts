import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, so a test can break the network path
 * of one client while the server keeps running:
 * - `cut()` resets every current connection (the client sees 1006),
 * - `freeze()` keeps current connections open but stops moving bytes (a half-open link that
 *   only an app-level ping notices),
 * - `down()` / `up()` stop and restart listening on the same port (connection refused meanwhile).
 * New connections after `cut()`/`freeze()` are proxied normally.
 */
export class TcpProxy {
  #server: Server | undefined;
  readonly #pairs = new Set<[Socket, Socket]>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    /** The port the proxy listens on. */
    public port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Starts a proxy to `targetPort` on 127.0.0.1, listening on `port` (0 = any free port). */
  static async start(targetPort: number, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy(port, { host: '127.0.0.1', port: targetPort });
    await proxy.up();
    return proxy;
  }

  /** Listens (again) on the proxy's port. */
  async up(): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stops listening and resets every current connection. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.cut();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resets every current connection (RST to both sides). */
  cut(): void {
    for (const [a, b] of this.#pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  /** Stops forwarding on every current connection without closing it. */
  freeze(): void {
    for (const pair of this.#pairs) {
      for (const s of pair) {
        s.unpipe();
        s.pause();
      }
      this.#pairs.delete(pair);
      // Kept open until close(): the client must find out on its own that the link is dead.
      this.#frozen.push(pair);
    }
  }

  readonly #frozen: [Socket, Socket][] = [];

  /** Stops the proxy and destroys every connection, frozen ones included. */
  async close(): Promise<void> {
    // Frozen sockets first: server.close() waits for every accepted connection to end.
    for (const [a, b] of this.#frozen.splice(0)) {
      a.destroy();
      b.destroy();
    }
    await this.down();
  }

  #accept(client: Socket): void {
    this.accepted++;
    const upstream = createConnection(this.target);
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
