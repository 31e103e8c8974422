import net from 'node:net';
import { once } from 'node:events';

/**
 * A TCP proxy in front of one server whose connections can be cut: `cut(ms)` destroys every
 * connection through it and refuses new ones for `ms` (the client sees its connection drop and
 * its reconnects fail, as on a lossy mobile link). The `jitter` scenario gives each client one.
 */
export class CutProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private downUntil = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Starts a proxy on 127.0.0.1, a free port, towards `target`. */
  static async start(target: { host: string; port: number }): Promise<CutProxy> {
    const proxy = new CutProxy(target);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Drops every connection now and refuses new ones for `ms`. */
  cut(ms: number): void {
    this.downUntil = Date.now() + ms;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (Date.now() < this.downUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(a);
      a.once('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }
}
