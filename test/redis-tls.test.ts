import { expect } from 'chai';
import {
  TestClient,
  createTestCa,
  eventually,
  spawnChild,
  startTlsRedis,
  startWorker,
  WORKER_BIN,
  type TestCa,
  type TestRedis,
  type WorkerProcess,
} from './helpers/index.js';
import { BALANCER_BIN, getStatus, startBalancer, type BalancerProcess } from './helpers/balancer.js';

// A real redis-server that speaks only TLS (`--port 0 --tls-port …`, certificate from the test CA)
// and demands a password, as managed Redis services do: the worker and the balancer's discovery
// reach it with `rediss://` and HERALD_REDIS_CA.
describe('rediss:// (real redis-server with --tls-port and requirepass, openssl test CA)', function () {
  this.timeout(30_000);

  const PASSWORD = 'tls-pw-5d1e9a3b-never-logged';
  let ca: TestCa;
  let redis: TestRedis;
  let url: string;
  const workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;

  before(async () => {
    ca = createTestCa();
    redis = await startTlsRedis(ca.issue('redis'), ca.caFile, ['--requirepass', PASSWORD]);
    url = `rediss://:${PASSWORD}@127.0.0.1:${redis.port}`;
  });
  after(async () => {
    await redis?.stop();
    ca?.remove();
  });
  afterEach(async () => {
    await balancer?.stop('SIGKILL');
    balancer = undefined;
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });

  // Each test its own key prefix: a SIGKILLed worker's membership record outlives its test.
  let prefix = '';
  beforeEach(function () {
    prefix = `tls-${this.currentTest!.title.slice(0, 12).replace(/\W/g, '')}:`;
  });
  const worker = async (env: NodeJS.ProcessEnv) => {
    const w = await startWorker({ HERALD_REDIS_PROBE_MS: '200', HERALD_REDIS_PREFIX: prefix, ...env });
    workers.push(w);
    return w;
  };

  it('two workers on rediss:// with HERALD_REDIS_CA are ready and carry messages between them; no log line holds the password', async () => {
    const [a, b] = [await worker({ REDIS_URL: url, HERALD_REDIS_CA: ca.caFile, LOG_LEVEL: 'debug' }), await worker({ REDIS_URL: url, HERALD_REDIS_CA: ca.caFile })];
    for (const w of [a!, b!]) await eventually(async () => expect((await fetch(`${w.url}/readyz`)).status).to.equal(200), { timeout: 10_000, interval: 50 });
    const sub = await TestClient.open(`${b!.wsUrl}/ws`);
    expect((await sub.request({ type: 'subscribe', channel: 'room:tls' })).type).to.equal('ack');
    const pub = await TestClient.open(`${a!.wsUrl}/ws`);
    expect((await pub.request({ type: 'publish', channel: 'room:tls', data: 'across TLS Redis' })).type).to.equal('ack');
    await sub.waitFrame((f) => f.type === 'message' && f.data === 'across TLS Redis');
    await Promise.all([sub.close(), pub.close()]);
    expect(a!.child.lines.length).to.be.greaterThan(3);
    expect(a!.child.lines.filter((l) => l.includes(PASSWORD))).to.deep.equal([]);
  });

  it('the balancer discovers a worker through rediss:// and proxies to it', async () => {
    const w = await worker({ REDIS_URL: url, HERALD_REDIS_CA: ca.caFile });
    balancer = await startBalancer({ REDIS_URL: url, HERALD_REDIS_CA: ca.caFile, HERALD_REDIS_PREFIX: prefix, LOG_LEVEL: 'debug' });
    await eventually(async () => {
      const s = await getStatus(balancer!.port);
      expect(s.workers.map((x) => [x.node, x.healthy])).to.deep.equal([[w.node, true]]);
    }, { timeout: 10_000, interval: 50 });
    const c = await TestClient.open(`${balancer.wsUrl}/ws`);
    expect(c.welcome!.node).to.equal(w.node);
    await c.close();
    expect(balancer.child.lines.filter((l) => l.includes(PASSWORD))).to.deep.equal([]);
  });

  it('without HERALD_REDIS_CA the server certificate is not trusted: the worker starts unavailable (readyz 503) and says why', async () => {
    const w = await worker({ REDIS_URL: url });
    const res = await fetch(`${w.url}/readyz`);
    expect(res.status).to.equal(503);
    expect(((await res.json()) as { reason: string }).reason).to.equal('broker unavailable');
    await w.child.waitForLine((l) => l.includes('redis publisher error') && /self-signed|unable to (verify|get local issuer)/.test(l));
  });

  it('refuses HERALD_REDIS_CA with a plain redis:// URL (worker and balancer exit 1 with one line)', async () => {
    for (const [bin, name] of [[WORKER_BIN, 'herald-worker'], [BALANCER_BIN, 'herald-balancer']] as const) {
      const child = spawnChild(name, process.execPath, [bin], { PORT: '0', HOST: '127.0.0.1', REDIS_URL: `redis://127.0.0.1:${redis.port}`, HERALD_REDIS_CA: ca.caFile });
      expect((await child.exited).code, name).to.equal(1);
      expect(child.lines, name).to.have.length(1);
      expect(child.lines[0]).to.match(new RegExp(`^${name}: .*HERALD_REDIS_CA.*needs a rediss:// REDIS_URL`));
    }
  });
});
