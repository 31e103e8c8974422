import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { eventually } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';

/**
 * An upstream whose health check passes; its upgrades are either refused 503 (a worker that
 * started draining before the balancer's next health check) or accepted by a ws server.
 */
async function upstream(refuse: boolean): Promise<{ port: number; upgrades: number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ noServer: true });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ready":true}');
  });
  const state = { port: 0, upgrades: 0, close: async () => undefined as void };
  server.on('upgrade', (req, socket: net.Socket, head) => {
    state.upgrades++;
    socket.on('error', () => undefined);
    if (refuse) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{"error":"shutting_down","reason":"drn"}');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.send('hello'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  state.close = async () => {
    for (const c of wss.clients) c.terminate();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

for (const relay of ['native', 'js'] as const) {
  describe(`balancer: an upgrade answered 503 goes to the next worker (relay: ${relay})`, function () {
    this.timeout(30_000);
    let refusing: Awaited<ReturnType<typeof upstream>>;
    let accepting: Awaited<ReturnType<typeof upstream>>;
    let balancer: BalancerProcess;

    beforeEach(async () => {
      refusing = await upstream(true);
      accepting = await upstream(false);
      balancer = await startBalancer({
        HERALD_WORKERS: `127.0.0.1:${refusing.port},127.0.0.1:${accepting.port}`,
        HERALD_RELAY: relay,
        // Both healthy for the whole test: the 503 alone must move the upgrade.
        HERALD_HEALTH_INTERVAL_MS: '600000',
        HERALD_HEALTH_RISE: '1',
      });
    });
    afterEach(async () => {
      await balancer.stop('SIGKILL');
      await refusing.close();
      await accepting.close();
    });

    it('every client is upgraded by the worker that accepts, none sees the 503', async () => {
      await eventually(async () => expect((await balancer.status()).healthy).to.equal(2));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(`${balancer.wsUrl}/ws?sid=k${i}`);
            ws.on('unexpected-response', (_req, res) => resolve(`status ${res.statusCode}`));
            ws.on('error', (err) => resolve(`error ${err.message}`));
            ws.on('message', (data) => {
              resolve(String(data));
              ws.close();
            });
          }),
        ),
      );
      expect(results).to.deep.equal(Array.from({ length: 20 }, () => 'hello'));
      // The ranking sent some of them to the refusing worker first: the retry is what is tested.
      expect(refusing.upgrades).to.be.greaterThan(0);
      expect(accepting.upgrades).to.equal(20);
      expect(balancer.child.proc.exitCode).to.equal(null);
    });
  });
}
