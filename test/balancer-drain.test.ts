import { expect } from 'chai';
import { TestClient, eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { startBalancer, getStatus, type BalancerProcess } from './helpers/balancer.js';

interface Closed {
  code: number;
  at: number;
}

/** Opens `n` /ws clients through `url` and records each close (code and time). */
async function openClients(url: string, n: number, tag: string, headers?: Record<string, string>): Promise<{ clients: TestClient[]; closes: Closed[] }> {
  const closes: Closed[] = [];
  const clients = await Promise.all(Array.from({ length: n }, (_, i) => TestClient.open(`${url}/ws?sid=${tag}${i}`, headers ? { headers } : undefined)));
  for (const c of clients) void c.closed.then(({ code }) => closes.push({ code, at: Date.now() }));
  return { clients, closes };
}

/** Most closes within any window of `ms`. */
function peak(closes: Closed[], ms: number): number {
  const times = closes.map((c) => c.at).sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j]! - times[i]! > ms) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

for (const relay of ['native', 'js'] as const) {
  describe(`balancer SIGTERM drain (redis, 3 workers, relay: ${relay})`, function () {
    this.timeout(60_000);
    let redis: TestRedis;
    let workers: WorkerProcess[] = [];
    const balancers: BalancerProcess[] = [];
    const clients: TestClient[] = [];
    let testNo = 0;
    let prefix: string;

    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.stop();
    });
    beforeEach(async () => {
      prefix = `drain${++testNo}-${process.pid}:`;
      workers = await Promise.all([0, 1, 2].map(() => startWorker({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix })));
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) c.ws.terminate();
      await Promise.all(balancers.splice(0).map((b) => b.stop('SIGKILL')));
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    });

    async function balancer(env: NodeJS.ProcessEnv): Promise<BalancerProcess> {
      const b = await startBalancer({ HERALD_RELAY: relay, ...env });
      balancers.push(b);
      await eventually(async () => expect((await b.status()).healthy).to.equal(3), { timeout: 10_000 });
      return b;
    }

    it('the workers close its connections with 1001 in paced batches, status says draining, then it exits 0 (zero 1006)', async () => {
      const drainMs = 4000;
      const b1 = await balancer({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: String(drainMs) });
      const b2 = await balancer({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix });
      const through = await openClients(b1.wsUrl, 60, 'd');
      // A client of another balancer forging b1's tag: b2 replaces it, so b1's drain spares it.
      const forged = await openClients(b2.wsUrl, 3, 'f', { 'X-Herald-Balancer': b1.id });
      const direct = await openClients(workers[0]!.wsUrl, 3, 'w');
      clients.push(...through.clients, ...forged.clients, ...direct.clients);
      await eventually(async () => expect((await b1.status()).connections.tunnels).to.equal(60));

      const started = Date.now();
      const exit = b1.stop('SIGTERM');
      const during = await eventually(async () => {
        const s = await getStatus(b1.port);
        expect(s.status).to.equal('draining');
        return s;
      });
      expect(during.id).to.equal(b1.id);
      const refused = await TestClient.connect(`${b1.wsUrl}/ws?sid=late`).catch((e: { status?: number }) => e);
      expect((refused as { status?: number }).status, 'a new upgrade while draining').to.equal(503);

      expect(await exit).to.deep.equal({ code: 0, signal: null });
      const took = Date.now() - started;
      await eventually(() => expect(through.closes.length).to.equal(60));
      const codes = through.closes.map((c) => c.code);
      expect(codes.filter((c) => c === 1006).length, 'closes without a close frame').to.equal(0);
      expect(codes.every((c) => c === 1001), `close codes ${[...new Set(codes)].join(',')}`).to.equal(true);
      // Exits once its tunnels are gone, not at the end of the budget; the workers pace the
      // closes (closeInBatches: one batch per 50 ms over half the budget), never all at once.
      // 60 clients over 3 workers: the busiest worker has at least 20, one a batch, so its
      // closes alone span at least 19 × 50 ms (the spread of 2 s is not reached by so few).
      expect(took).to.be.below(drainMs);
      const spanMs = Math.max(...through.closes.map((c) => c.at)) - Math.min(...through.closes.map((c) => c.at));
      expect(spanMs, 'closes spread over').to.be.at.least(19 * 50 - 25);
      expect(peak(through.closes, 100), 'closes in any 100 ms').to.be.at.most(15);
      // Nobody else was touched.
      expect(forged.closes.length + direct.closes.length).to.equal(0);
      for (const c of [...forged.clients, ...direct.clients]) expect((await c.request({ type: 'subscribe', channel: 'still:here' })).type).to.equal('ack');
      for (const w of workers) expect(w.child.proc.exitCode).to.equal(null);
    });

    it('without Redis (static worker list) it cannot reach the workers: it cuts tunnels in paced batches over the drain time (documented)', async () => {
      const b = await balancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(','), HERALD_DRAIN_MS: '1500' });
      const through = await openClients(b.wsUrl, 20, 's');
      clients.push(...through.clients);
      const exit = b.stop('SIGTERM');
      await eventually(async () => expect((await getStatus(b.port)).status).to.equal('draining'));
      expect(await exit).to.deep.equal({ code: 0, signal: null });
      await eventually(() => expect(through.closes.length).to.equal(20));
      expect(through.closes.every((c) => c.code === 1006)).to.equal(true);
      const spanMs = Math.max(...through.closes.map((c) => c.at)) - Math.min(...through.closes.map((c) => c.at));
      expect(spanMs, 'cuts spread over').to.be.at.least(700);
    });
  });
}
