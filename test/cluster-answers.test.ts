import { expect } from 'chai';
import { TestClient, startCluster, type TestCluster } from './helpers/index.js';

/**
 * Frame limits that admit a flood of 8,000 frames sent at once: the point of these tests is one
 * answer per id (SPEC §3), not the rate limits (test/security-rate.test.ts covers those).
 */
const FLOOD = {
  HERALD_RATE_FRAMES_PER_S: '0',
  HERALD_RATE_BYTES_PER_S: '0',
  HERALD_RATE_MAX_REFUSED: '0',
  HERALD_MAX_FRAMES_IN_FLIGHT: '10000',
  // Detect a dead or frozen Redis quickly, so the flood is answered well within the test's time.
  HERALD_LEASE_MS: '2000',
  HERALD_REDIS_COMMAND_TIMEOUT_MS: '500',
  HERALD_REDIS_PROBE_MS: '200',
};

/** The answers (ack or error) a client received, in arrival order. */
const answers = (c: TestClient) => c.frames.filter((f) => f.type === 'ack' || f.type === 'error');

/**
 * Issue 12, item 1 (SPEC §3 order and answers) on a real redis-server and a real worker process:
 * the Redis round trips of subscribe and publish must not reorder a connection's frames, and a
 * dead or frozen Redis must not cost any frame its answer.
 */
describe('cluster: order and answers on a Redis-backed worker', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let frozen = false;
  const clients: TestClient[] = [];
  const open = async () => {
    const c = await TestClient.open(`${cluster.workers[0]!.wsUrl}/ws`);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    cluster = await startCluster(1, FLOOD);
    frozen = false;
  });
  afterEach(async () => {
    if (frozen) process.kill(cluster.redis.child.pid!, 'SIGCONT');
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop(true);
  });

  it('delivers a publish sent right after a subscribe to the sender, 20 times out of 20', async () => {
    const c = await open();
    for (let i = 0; i < 20; i++) {
      const channel = `room:own-${i}`;
      const sub = 2 * i + 1;
      c.send({ type: 'subscribe', channel, id: sub });
      c.send({ type: 'publish', channel, data: `mine-${i}`, id: sub + 1 });
      await c.waitFrame((f) => f.id === sub + 1);
      const [subAck, pubAck] = answers(c).slice(-2);
      expect(subAck, `try ${i}: subscribe`).to.deep.include({ type: 'ack', id: sub, recovered: false });
      expect(pubAck, `try ${i}: publish`).to.deep.include({ type: 'ack', id: sub + 1, offset: 1 });
      const own = await c.waitFrame((f) => f.type === 'message' && f.channel === channel, 5000);
      expect(own, `try ${i}: own message`).to.deep.include({ data: `mine-${i}`, offset: 1 });
    }
    // Exactly one copy of each, in order.
    expect(c.of('message').map((m) => m.data)).to.deep.equal(Array.from({ length: 20 }, (_, i) => `mine-${i}`));
  });

  it('answers two back-to-back unsubscribes in order (the Redis unsubscribe of the first one does not reorder them)', async () => {
    const c = await open();
    for (let i = 0; i < 10; i++) {
      const channel = `room:unsub-${i}`;
      const base = 3 * i + 1;
      // The three frames back to back: the subscribe's Redis round trip is still running when both unsubscribes arrive.
      c.send({ type: 'subscribe', channel, id: base });
      c.send({ type: 'unsubscribe', channel, id: base + 1 });
      c.send({ type: 'unsubscribe', channel, id: base + 2 });
      await c.waitFrame((f) => f.id === base + 2);
    }
    const got = answers(c).map((f) => [f.id, f.type]);
    const want = Array.from({ length: 10 }, (_, i) => [
      [3 * i + 1, 'ack'],
      [3 * i + 2, 'ack'],
      [3 * i + 3, 'error'],
    ]).flat();
    expect(got).to.deep.equal(want);
  });

  for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
    it(`with Redis stopped (${signal}): 4,000 publishes sent at once get exactly 4,000 answers, in id order`, async () => {
      const c = await open();
      expect(await c.request({ type: 'subscribe', channel: 'room:down' })).to.deep.include({ type: 'ack' });
      await stopRedis(signal);
      const n = 4000;
      const first = 2;
      for (let i = 0; i < n; i++) c.send({ type: 'publish', channel: 'room:down', data: i, id: first + i });
      await c.waitCount(() => answers(c).length, n + 1, 40_000);
      const flood = answers(c).slice(1);
      expect(flood.map((f) => f.id)).to.deep.equal(Array.from({ length: n }, (_, i) => first + i));
      const ok = flood.filter((f) => f.type === 'ack').length;
      const unavailable = flood.filter((f) => f.type === 'error' && f.code === 'unavailable').length;
      // Every answer is one of the two, counted exactly; with Redis gone, nearly all are refusals.
      expect(ok + unavailable, JSON.stringify(flood.filter((f) => f.type === 'error' && f.code !== 'unavailable').slice(0, 3))).to.equal(n);
      expect(unavailable).to.be.at.least(n - 10);
      expect(c.ws.readyState).to.equal(c.ws.OPEN);
      await noMoreAnswers(c, n + 1);
    });

    it(`with Redis stopped (${signal}): 8,000 subscribe and unsubscribe frames get exactly 8,000 answers, in id order`, async () => {
      const c = await open();
      await stopRedis(signal);
      const n = 8000;
      for (let i = 0; i < n; i++) {
        const channel = `room:flood-${i >> 1}`;
        c.send({ type: i % 2 === 0 ? 'subscribe' : 'unsubscribe', channel, id: i + 1 });
      }
      await c.waitCount(() => answers(c).length, n, 40_000);
      const got = answers(c);
      expect(got.map((f) => f.id)).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
      // Each subscribe is refused (Redis is down) and so each unsubscribe finds no subscription.
      const codes = new Map<string, number>();
      for (const f of got) codes.set(`${f.type}:${f.code ?? ''}`, (codes.get(`${f.type}:${f.code ?? ''}`) ?? 0) + 1);
      const subs = got.filter((_, i) => i % 2 === 0);
      expect(subs.every((f) => f.type === 'error' && f.code === 'unavailable'), JSON.stringify([...codes])).to.equal(true);
      expect(Object.fromEntries(codes)).to.deep.equal({ 'error:unavailable': n / 2, 'error:not_found': n / 2 });
      expect(c.ws.readyState).to.equal(c.ws.OPEN);
      await noMoreAnswers(c, n);
    });
  }

  async function stopRedis(signal: 'SIGKILL' | 'SIGSTOP'): Promise<void> {
    if (signal === 'SIGKILL') {
      await cluster.redis.stop('SIGKILL');
    } else {
      process.kill(cluster.redis.child.pid!, 'SIGSTOP');
      frozen = true;
    }
  }

  /** A ping answered after the flood proves nothing more was queued: the answer count stays exact. */
  async function noMoreAnswers(c: TestClient, count: number): Promise<void> {
    c.send({ type: 'ping', id: 1_000_000 });
    await c.waitFrame((f) => f.id === 1_000_000, 10_000);
    expect(answers(c)).to.have.length(count);
  }
});
