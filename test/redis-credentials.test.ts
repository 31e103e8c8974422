import { expect } from 'chai';
import { eventually, freePort, spawnChild, startRedis, startWorker, TestClient, WORKER_BIN, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { BALANCER_BIN, getStatus, startBalancer, type BalancerProcess } from './helpers/balancer.js';

// A real redis-server that demands credentials: the default user's password (`requirepass`) and
// an ACL user (`--user`). The worker must work with them in REDIS_URL and never log them.
describe('worker on a password-protected Redis (real redis-server)', function () {
  this.timeout(30_000);

  const PASSWORD = 'pw-3f9a1c7e-never-logged';
  const ACL_PASSWORD = 'acl-8b2d4e6f-never-logged';
  // An ACL user that may log in but not touch Herald's keys (`~other:*`).
  const LIMITED_PASSWORD = 'limited-1c4f7a9d-never-logged';
  let redis: TestRedis;
  let worker: WorkerProcess | undefined;

  before(async () => {
    redis = await startRedis(undefined, ['--requirepass', PASSWORD, '--user', 'herald', 'on', `>${ACL_PASSWORD}`, '~*', '&*', '+@all', '--user', 'limited', 'on', `>${LIMITED_PASSWORD}`, '~other:*', '&*', '+@all']);
  });
  after(async () => redis?.stop());
  afterEach(async () => {
    await worker?.stop('SIGKILL');
    worker = undefined;
  });

  for (const [label, url, secret] of [
    ['requirepass (redis://:pass@)', () => `redis://:${PASSWORD}@127.0.0.1:${redis.port}`, PASSWORD],
    ['an ACL user (redis://user:pass@)', () => `redis://herald:${ACL_PASSWORD}@127.0.0.1:${redis.port}`, ACL_PASSWORD],
  ] as const) {
    it(`serves /ws with ${label}, /readyz 200, and no log line holds the password`, async () => {
      worker = await startWorker({ REDIS_URL: url(), LOG_LEVEL: 'debug' });
      await eventually(async () => expect((await fetch(`${worker!.url}/readyz`)).status).to.equal(200), { timeout: 10_000, interval: 50 });
      const c = await TestClient.open(`${worker.wsUrl}/ws`);
      expect((await c.request({ type: 'subscribe', channel: 'room:1' })).type).to.equal('ack');
      expect((await c.request({ type: 'publish', channel: 'room:1', data: 'hi' })).type).to.equal('ack');
      await c.waitFrame((f) => f.type === 'message' && f.data === 'hi');
      await c.close();
      const w = worker;
      worker = undefined;
      expect((await w.stop('SIGTERM')).code).to.equal(0);
      // Every stdout/stderr line of the worker, debug level included, from start to exit.
      expect(w.child.lines.length).to.be.greaterThan(3);
      expect(w.child.lines.filter((l) => l.includes(secret))).to.deep.equal([]);
    });
  }

  // Refused credentials cannot fix themselves: the bin exits with one line naming the problem
  // (user kept, password redacted) instead of running unavailable forever.
  for (const [label, url, refusal] of [
    ['a wrong requirepass password', () => `redis://:wrong-${PASSWORD}@127.0.0.1:${redis.port}`, /WRONGPASS/],
    ['a wrong ACL user password', () => `redis://herald:wrong-${ACL_PASSWORD}@127.0.0.1:${redis.port}`, /WRONGPASS/],
    ['no password at all', () => `redis://127.0.0.1:${redis.port}`, /NOAUTH/],
    ['an ACL user without access to the prefix', () => `redis://limited:${LIMITED_PASSWORD}@127.0.0.1:${redis.port}`, /NOPERM/],
  ] as const) {
    for (const [bin, name] of [[WORKER_BIN, 'herald-worker'], [BALANCER_BIN, 'herald-balancer']] as const) {
      it(`${name} exits 1 with one clear line for ${label}`, async () => {
        const child = spawnChild(name, process.execPath, [bin], { PORT: '0', HOST: '127.0.0.1', REDIS_URL: url(), LOG_LEVEL: 'debug' });
        const { code } = await child.exited;
        expect(code).to.equal(1);
        const lines = child.lines.filter((l) => l.startsWith(`${name}: `));
        expect(lines, child.lines.join('\n')).to.have.length(1);
        expect(lines[0]).to.match(/refused the credentials/).and.to.match(refusal);
        if (url().includes('@')) expect(lines[0]).to.include(':***@127.0.0.1');
        expect(child.lines.filter((l) => [PASSWORD, ACL_PASSWORD, LIMITED_PASSWORD].some((p) => l.includes(p)))).to.deep.equal([]);
        expect(child.lines.filter((l) => l.includes('listening') || l.includes('unhandled') || l.includes('    at '))).to.deep.equal([]);
      });
    }
  }

  describe('a password-protected Redis that is down at start-up', () => {
    let late: TestRedis | undefined;
    let balancer: BalancerProcess | undefined;
    afterEach(async () => {
      await balancer?.stop('SIGKILL');
      balancer = undefined;
      await late?.stop();
      late = undefined;
    });

    it('the worker and the balancer start anyway (worker unavailable), then connect once it is up', async () => {
      const port = await freePort();
      const url = `redis://:${PASSWORD}@127.0.0.1:${port}`;
      worker = await startWorker({ REDIS_URL: url, HERALD_REDIS_PREFIX: 'late:', HERALD_REDIS_PROBE_MS: '200' });
      const res = await fetch(`${worker.url}/readyz`);
      expect([res.status, ((await res.json()) as { reason: string }).reason]).to.deep.equal([503, 'broker unavailable']);
      balancer = await startBalancer({ REDIS_URL: url, HERALD_REDIS_PREFIX: 'late:' });
      expect((await getStatus(balancer.port)).workers).to.deep.equal([]);

      late = await startRedis(port, ['--requirepass', PASSWORD]);
      await eventually(async () => expect((await fetch(`${worker!.url}/readyz`)).status).to.equal(200), { timeout: 15_000, interval: 100 });
      await eventually(async () => expect((await getStatus(balancer!.port)).workers.map((w) => [w.node, w.healthy])).to.deep.equal([[worker!.node, true]]), { timeout: 15_000, interval: 100 });
      for (const child of [worker.child, balancer.child]) expect(child.lines.filter((l) => l.includes(PASSWORD))).to.deep.equal([]);
    });
  });
});
