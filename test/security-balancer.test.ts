import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnChild, startWorker, eventually, TestClient, RawSocket, buildFrame, hsToken, TEST_SECRET, type Child, type WorkerProcess } from './helpers/index.js';

/** The balancer bin (built by `npm run build` once @herald/balancer is in the tree); HERALD_BALANCER_BIN overrides it. */
const BALANCER_BIN = process.env.HERALD_BALANCER_BIN ?? fileURLToPath(new URL('../packages/balancer/dist/bin/herald-balancer.js', import.meta.url));

describe('security through the balancer (worker + balancer processes)', function () {
  this.timeout(30_000);
  let worker: WorkerProcess | undefined;
  let balancer: Child | undefined;
  let base: string;
  let port: number;
  const clients: TestClient[] = [];

  before(function () {
    // Until the balancer package is in the tree there is nothing to test through.
    if (!existsSync(BALANCER_BIN)) this.skip();
  });

  beforeEach(async () => {
    worker = await startWorker({
      HERALD_AUTH: 'optional',
      HERALD_JWT_SECRET: TEST_SECRET,
      HERALD_ALLOWED_ORIGINS: 'https://app.example.com',
      HERALD_TRUSTED_PROXIES: '127.0.0.1',
      HERALD_MAX_CONNECTIONS_PER_IP: '3',
    });
    balancer = spawnChild('balancer', process.execPath, [BALANCER_BIN], {
      PORT: '0',
      HOST: '127.0.0.1',
      HERALD_WORKERS: `127.0.0.1:${worker.port}`,
      HERALD_HEALTH_INTERVAL_MS: '100',
      LOG_LEVEL: 'info',
    });
    const line = await balancer.waitForLine((l) => l.includes('"msg":"listening"'));
    port = (JSON.parse(line) as { port: number }).port;
    base = `ws://127.0.0.1:${port}`;
    await eventually(async () => {
      const status = (await (await fetch(`http://127.0.0.1:${port}/balancer/status`)).json()) as { healthy: number };
      expect(status.healthy).to.equal(1);
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await balancer?.stop();
    await worker?.stop();
  });

  const status = (url: string, opts?: object) => TestClient.connect(url, opts).then((c) => (clients.push(c), 101), (e) => e.status as number);

  it('relays token auth (401, or close 4001 for query tokens) and origin refusals (403) from the worker', async () => {
    const ok = await TestClient.open(`${base}/ws`, { headers: { Authorization: `Bearer ${await hsToken('alice')}` } });
    clients.push(ok);
    expect(ok.welcome!.user).to.equal('alice');
    expect(await status(`${base}/ws`, { headers: { Authorization: 'Bearer garbage' } })).to.equal(401);
    const viaQuery = await TestClient.connect(`${base}/ws?token=garbage`);
    clients.push(viaQuery);
    expect((await viaQuery.closed).code).to.equal(4001);
    expect(await status(`${base}/ws`, { origin: 'https://app.example.com.evil.com' })).to.equal(403);
    expect(await status(`${base}/ws`, { origin: 'https://app.example.com' })).to.equal(101);
  });

  it('counts the client named by the balancer\'s X-Forwarded-For against the worker\'s per-IP cap', async () => {
    for (let i = 0; i < 3; i++) expect(await status(`${base}/ws`)).to.equal(101);
    expect(await status(`${base}/ws`)).to.equal(429);
  });

  it('relays the worker\'s close codes for hostile frames and keeps serving others', async () => {
    const bystander = await TestClient.open(`${base}/ws`);
    clients.push(bystander);
    const cases: Array<[Buffer, number]> = [
      [buildFrame({ opcode: 1, rsv: 4, payload: '{}' }), 1002],
      [buildFrame({ opcode: 1, mask: false, payload: '{}' }), 1002],
      [buildFrame({ opcode: 1, payload: Buffer.from([0xc3, 0x28]) }), 1007],
      [buildFrame({ opcode: 2, payload: Buffer.alloc(70_000) }), 1009],
    ];
    for (const [bytes, code] of cases) {
      const raw = await RawSocket.upgrade(port, '/ws');
      raw.write(bytes);
      expect(await raw.closeCode()).to.equal(code);
      raw.destroy();
      bystander.send({ type: 'ping', id: code });
      await bystander.waitFrame((f) => f.type === 'pong' && f.id === code);
    }
    expect((await fetch(`http://127.0.0.1:${port}/balancer/status`)).status).to.equal(200);
  });
});
