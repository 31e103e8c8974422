import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { eventually } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { upgradeRequest } from './helpers/raw-ws.js';

/**
 * A scripted upstream: answers the health check, but holds every upgrade without answering (a
 * worker slow to answer), and records whether the balancer gave each held request up: a reset
 * (`error`) or the end of the stream. The end counts too: when the balancer's reset reaches
 * the worker before the worker read the request, Linux hands the worker the request and then
 * an end of stream, not ECONNRESET — and Node's HTTP server keeps such a half-closed socket
 * open (allowHalfOpen), so `destroyed` alone would say "held" about a request that was given up
 * (the flake of this suite, in about half the runs: one request that raced the reset).
 */
async function slowUpstream(): Promise<{ port: number; held: net.Socket[]; open(): number; close(): Promise<void> }> {
  const held: net.Socket[] = [];
  const givenUp = new WeakSet<net.Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ready":true}');
  });
  server.on('upgrade', (_req, socket: net.Socket) => {
    socket.on('error', () => givenUp.add(socket));
    socket.on('end', () => givenUp.add(socket));
    held.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    held,
    open: () => held.filter((s) => !s.destroyed && !givenUp.has(s)).length,
    async close() {
      for (const s of held) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

for (const relay of ['native', 'js'] as const) {
  describe(`balancer: client reset before the worker answers (scripted slow upstream, relay: ${relay})`, function () {
    this.timeout(30_000);
    let upstream: Awaited<ReturnType<typeof slowUpstream>>;
    let balancer: BalancerProcess;

    beforeEach(async () => {
      upstream = await slowUpstream();
      balancer = await startBalancer({
        HERALD_WORKERS: `127.0.0.1:${upstream.port}`,
        HERALD_RELAY: relay,
        // One check at start, none during the test: a check in flight would hold a descriptor.
        HERALD_HEALTH_INTERVAL_MS: '600000',
        HERALD_HEALTH_RISE: '1',
        // Far above the test's own wait: only the reset can free the sockets in time.
        HERALD_HANDSHAKE_TIMEOUT_MS: '30000',
      });
    });

    afterEach(async () => {
      await balancer.stop('SIGKILL');
      await upstream.close();
    });

    it('300 clients that reset right after their upgrade: upstream requests aborted and descriptors freed at once', async () => {
      await eventually(async () => expect((await balancer.status()).healthy).to.equal(1));
      const baseline = balancer.fds();
      const request = upgradeRequest('/ws?sid=r');
      await Promise.all(
        Array.from({ length: 300 }, async () => {
          const socket = net.connect(balancer.port, '127.0.0.1');
          socket.on('error', () => undefined);
          await once(socket, 'connect');
          await new Promise<void>((resolve) => socket.write(request, () => resolve()));
          socket.resetAndDestroy();
        }),
      );
      const started = Date.now();
      await eventually(
        async () => {
          expect(balancer.fds(), 'balancer open fds').to.be.at.most(baseline);
          expect((await balancer.status()).connections.tunnels).to.equal(0);
          expect(upstream.open(), 'upgrade requests still held open at the worker').to.equal(0);
        },
        { timeout: 3000, interval: 50 },
      );
      expect(Date.now() - started).to.be.below(3000);
      expect(balancer.child.proc.exitCode).to.equal(null);
    });

    it('a client that half-closes before the worker answers is dropped too (it could never send a close frame)', async () => {
      await eventually(async () => expect((await balancer.status()).healthy).to.equal(1));
      const socket = net.connect(balancer.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.end(upgradeRequest('/ws?sid=h'));
      await once(socket, 'close');
      await eventually(
        async () => {
          expect(upstream.open()).to.equal(0);
          expect((await balancer.status()).connections.tunnels).to.equal(0);
        },
        { timeout: 3000 },
      );
    });
  });
}
