import { expect } from 'chai';
import WebSocket from 'ws';
import { startWorker, type WorkerProcess } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';

/** HERALD_TUNNEL_IDLE_MS on both data planes: a silent tunnel is closed, a busy one stays. */
describe('balancer: idle timeout of open tunnels (worker + balancer processes)', function () {
  this.timeout(30_000);
  let worker: WorkerProcess;
  let balancer: BalancerProcess | undefined;
  before(async () => {
    worker = await startWorker({});
  });
  after(async () => {
    await worker.stop();
  });
  afterEach(async () => {
    await balancer?.stop();
    balancer = undefined;
  });

  for (const relay of ['auto', 'js'] as const) {
    it(`closes a tunnel without traffic and keeps a busy one (HERALD_RELAY=${relay})`, async () => {
      balancer = await startBalancer({ HERALD_WORKERS: `127.0.0.1:${worker.port}`, HERALD_TUNNEL_IDLE_MS: '400', HERALD_RELAY: relay });
      const open = (path: string) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${balancer!.wsUrl}${path}`);
          ws.once('open', () => resolve(ws)).once('error', reject);
        });
      const started = Date.now();
      const silent = await open('/echo?sid=silent');
      const busy = await open('/echo?sid=busy');
      let echoes = 0;
      busy.on('message', () => echoes++);
      const ticker = setInterval(() => busy.send('tick'), 100);
      const closedAfter = await new Promise<number>((resolve) => silent.once('close', () => resolve(Date.now() - started)));
      clearInterval(ticker);
      // Checked every idle/4 by the relay: closed after 400 ms, within 400 + 100 ms plus scheduling
      // (counted from before the open: the idle clock starts at the last byte of the handshake).
      expect(closedAfter).to.be.within(380, 2000);
      expect(busy.readyState).to.equal(WebSocket.OPEN);
      expect(echoes).to.be.greaterThan(0);
      busy.close();
    });
  }
});
