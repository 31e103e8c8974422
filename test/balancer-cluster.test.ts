import { expect } from 'chai';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { TestClient, eventually, freePort, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { announce, nodesForKeys, startBalancer, type BalancerProcess } from './helpers/balancer.js';

const KEYS = Array.from({ length: 1000 }, (_, i) => `sid-${i}`);

describe('balancer (redis, 3 workers)', function () {
  this.timeout(60_000);

  let redis: TestRedis;
  let client: Redis;
  let prefix: string;
  let testNo = 0;
  let workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    client.on('error', () => undefined);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  /** Starts a worker on the suite's Redis under this test's prefix; it announces itself there. */
  async function addWorker(env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> {
    const worker = await startWorker({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, HERALD_DRAIN_MS: '2000', ...env });
    workers.push(worker);
    return worker;
  }

  /** The worker's own membership record, as the balancer reads it. */
  async function record(worker: WorkerProcess): Promise<{ id: string; address: string } | null> {
    const raw = await client.get(`${prefix}node:${worker.node}`);
    return raw === null ? null : (JSON.parse(raw) as { id: string; address: string });
  }

  function indexOfNode(node: string): number {
    return workers.findIndex((w) => w.node === node);
  }

  async function open(url: string): Promise<TestClient> {
    const c = await TestClient.open(url);
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    prefix = `t${++testNo}-${process.pid}:`;
    await Promise.all([addWorker(), addWorker(), addWorker()]);
    balancer = await startBalancer({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix });
    await eventually(async () => expect((await balancer!.status()).healthy).to.equal(3), { timeout: 10_000 });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await balancer?.stop();
    balancer = undefined;
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });

  it('discovers the workers from their membership records and proxies HTTP and WebSocket', async () => {
    for (const w of workers) expect(await record(w)).to.deep.include({ id: w.node, address: `127.0.0.1:${w.port}` });
    const status = await balancer!.status();
    expect(status.workers.map((w) => w.node).sort()).to.deep.equal(workers.map((w) => w.node).sort());
    expect(status.workers.every((w) => w.state === 'healthy')).to.equal(true);
    const echo = new WebSocket(`${balancer!.wsUrl}/echo?sid=a`);
    echo.on('error', () => undefined);
    await once(echo, 'open');
    echo.send('ping-through-balancer');
    const [data] = (await once(echo, 'message')) as [Buffer];
    expect(data.toString()).to.equal('ping-through-balancer');
    echo.close();
    await once(echo, 'close');
    const res = await fetch(`${balancer!.url}/healthz`);
    expect(res.status).to.equal(200);
  });

  it('keeps a session id on one worker (stickiness)', async () => {
    for (const sid of ['alpha', 'beta', 'gamma']) {
      const nodes = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const c = await open(`${balancer!.wsUrl}/ws?sid=${sid}`);
        nodes.add(c.welcome!.node);
        await c.close();
      }
      expect(nodes.size, sid).to.equal(1);
      const http = await nodesForKeys(balancer!.url, [sid]);
      expect(http.get(sid)).to.equal([...nodes][0]);
    }
  });

  it('spreads 1,000 session ids over the 3 workers within ±20 % of even', async () => {
    const map = await nodesForKeys(balancer!.url, KEYS);
    const counts = new Map<string, number>();
    for (const node of map.values()) counts.set(node, (counts.get(node) ?? 0) + 1);
    expect(counts.size).to.equal(3);
    for (const [node, n] of counts) expect(n, node).to.be.within(1000 / 3 * 0.8, 1000 / 3 * 1.2);
  });

  it('moves only the keys of a worker that leaves (graceful stop)', async () => {
    const before = await nodesForKeys(balancer!.url, KEYS);
    const leaving = workers[1]!;
    expect((await leaving.stop('SIGTERM')).code).to.equal(0);
    expect(await record(leaving)).to.equal(null);
    await eventually(async () => {
      const status = await balancer!.status();
      expect(status.healthy).to.equal(2);
      expect(status.workers.find((w) => w.node === leaving.node)?.healthy ?? false).to.equal(false);
    }, { timeout: 10_000 });
    const after = await nodesForKeys(balancer!.url, KEYS);
    let moved = 0;
    for (const key of KEYS) {
      if (before.get(key) === leaving.node) {
        moved += 1;
        expect(after.get(key)).to.not.equal(leaving.node);
      } else {
        expect(after.get(key), key).to.equal(before.get(key));
      }
    }
    expect(moved).to.be.greaterThan(200);
  });

  it('finds a worker added later without a restart, and it takes keys only for itself', async () => {
    const before = await nodesForKeys(balancer!.url, KEYS);
    const added = await addWorker();
    await eventually(async () => expect((await balancer!.status()).healthy).to.equal(4), { timeout: 10_000 });
    const after = await nodesForKeys(balancer!.url, KEYS);
    let taken = 0;
    for (const key of KEYS) {
      if (after.get(key) === before.get(key)) continue;
      expect(after.get(key)).to.equal(added.node);
      taken += 1;
    }
    expect(taken).to.be.within(150, 350);
  });

  it('fails over after SIGKILL: the client reconnects through the balancer to another worker', async () => {
    const first = await open(`${balancer!.wsUrl}/ws?sid=failover`);
    const victim = indexOfNode(first.welcome!.node);
    expect(victim).to.be.greaterThanOrEqual(0);
    // Its membership record outlives it (until the lease runs out): health checks must cover that.
    await workers[victim]!.stop('SIGKILL');
    const closed = await first.closed;
    expect(closed.code).to.equal(1006);
    // Reconnect at once, before any health check ran: the connect error is retried on the next worker.
    const second = await open(`${balancer!.wsUrl}/ws?sid=failover`);
    expect(second.welcome!.node).to.not.equal(workers[victim]!.node);
    second.send({ type: 'ping' });
    await second.waitFrame((f) => f.type === 'pong');
    await eventually(async () => {
      const status = await balancer!.status();
      const dead = status.workers.find((w) => w.node === workers[victim]!.node);
      expect(dead === undefined || !dead.healthy).to.equal(true);
    });
    // Later connections with that key stay on the new worker.
    const third = await open(`${balancer!.wsUrl}/ws?sid=failover`);
    expect(third.welcome!.node).to.equal(second.welcome!.node);
  });

  it('stops sending upgrades to a draining worker; its clients get 1001 and reconnect elsewhere', async () => {
    const c = await open(`${balancer!.wsUrl}/ws?sid=drain-me`);
    const index = indexOfNode(c.welcome!.node);
    const draining = workers[index]!;
    const exited = draining.stop('SIGTERM');
    expect((await c.closed).code).to.equal(1001);
    await eventually(async () => {
      // Out of rotation: marked draining by /readyz, or already gone from the records.
      const w = (await balancer!.status()).workers.find((x) => x.node === draining.node);
      expect(w?.state ?? 'gone').to.be.oneOf(['draining', 'unhealthy', 'gone']);
    });
    const again = await open(`${balancer!.wsUrl}/ws?sid=drain-me`);
    expect(again.welcome!.node).to.not.equal(draining.node);
    expect((await exited).code).to.equal(0);
  });

  it('starts before Redis is reachable and picks the workers up once it is', async () => {
    const port = await freePort();
    const b = await startBalancer({ REDIS_URL: `redis://127.0.0.1:${port}`, HERALD_REDIS_PREFIX: 'late:' });
    let late: TestRedis | undefined;
    let lateClient: Redis | undefined;
    const marks: Array<{ stop(remove: boolean): Promise<void> }> = [];
    try {
      expect((await b.status()).workers).to.have.length(0);
      const refused = await fetch(`${b.url}/readyz`);
      expect(refused.status).to.equal(503);
      late = await startRedis(port);
      lateClient = new Redis(late.url);
      lateClient.on('error', () => undefined);
      for (const w of workers) marks.push(announce(lateClient, 'late:', w.node, `127.0.0.1:${w.port}`));
      await eventually(async () => expect((await b.status()).healthy).to.equal(3), { timeout: 15_000 });
    } finally {
      await Promise.all(marks.map((m) => m.stop(false)));
      lateClient?.disconnect();
      await b.stop();
      await late?.stop();
    }
  });

  it('keeps the last worker list while Redis is unreachable', async () => {
    const own = await startRedis();
    const ownClient = new Redis(own.url);
    ownClient.on('error', () => undefined);
    const marks = workers.map((w) => announce(ownClient, 'own:', w.node, `127.0.0.1:${w.port}`));
    const b = await startBalancer({ REDIS_URL: own.url, HERALD_REDIS_PREFIX: 'own:' });
    try {
      await eventually(async () => expect((await b.status()).healthy).to.equal(3), { timeout: 10_000 });
      await Promise.all(marks.map((m) => m.stop(false)));
      ownClient.disconnect();
      await own.stop();
      await b.child.waitForLine((l) => l.includes('redis discovery failed'));
      const map = await nodesForKeys(b.url, KEYS.slice(0, 30));
      expect(new Set(map.values()).size).to.equal(3);
      expect((await b.status()).healthy).to.equal(3);
    } finally {
      await b.stop();
      ownClient.disconnect();
      await own.stop();
    }
  });
});
