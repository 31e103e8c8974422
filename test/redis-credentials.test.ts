import { expect } from 'chai';
import { eventually, startRedis, startWorker, TestClient, type TestRedis, type WorkerProcess } from './helpers/index.js';

// A real redis-server that demands credentials: the default user's password (`requirepass`) and
// an ACL user (`--user`). The worker must work with them in REDIS_URL and never log them.
describe('worker on a password-protected Redis (real redis-server)', function () {
  this.timeout(30_000);

  const PASSWORD = 'pw-3f9a1c7e-never-logged';
  const ACL_PASSWORD = 'acl-8b2d4e6f-never-logged';
  let redis: TestRedis;
  let worker: WorkerProcess | undefined;

  before(async () => {
    redis = await startRedis(undefined, ['--requirepass', PASSWORD, '--user', 'herald', 'on', `>${ACL_PASSWORD}`, '~*', '&*', '+@all']);
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
});
