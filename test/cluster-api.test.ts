import { expect } from 'chai';
import { TestClient, eventually, startCluster, type TestCluster } from './helpers/index.js';

const KEY = 'test-api-key-1234';

describe('HTTP API (redis, 3 workers)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  const clients: TestClient[] = [];
  const open = async (worker: number, query = '') => {
    const c = await TestClient.open(`${cluster.workers[worker]!.wsUrl}/ws${query}`);
    clients.push(c);
    return c;
  };
  const api = (worker: number, method: string, path: string, body?: unknown, key: string | null = KEY) =>
    fetch(`${cluster.workers[worker]!.url}${path}`, {
      method,
      headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeEach(async () => {
    cluster = await startCluster(3, { HERALD_API_KEY: KEY, HERALD_REDIS_COMMAND_TIMEOUT_MS: '500', HERALD_REDIS_PROBE_MS: '200' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop();
  });

  const routes: Array<[string, string, unknown]> = [
    ['POST', '/api/publish', { channel: 'room:1', data: 1 }],
    ['GET', '/api/presence?channel=room:1', undefined],
    ['POST', '/api/disconnect', { user: 'bob' }],
  ];

  it('refuses every route without the key or with a wrong one (401), on every worker', async () => {
    for (let w = 0; w < 3; w++) {
      for (const [method, path, body] of routes) {
        for (const key of [null, 'wrong-key', `${KEY}x`]) {
          const res = await api(w, method, path, body, key);
          expect(res.status, `${method} ${path} key=${key}`).to.equal(401);
          expect(res.headers.get('www-authenticate')).to.equal('Bearer');
          expect(await res.json()).to.deep.equal({ error: { code: 'unauthorized', message: 'missing or wrong API key' } });
        }
      }
    }
  });

  it('POST /api/publish publishes cluster-wide and answers the offset', async () => {
    const subs = [await open(0), await open(1), await open(2)];
    for (const s of subs) {
      await s.request({ type: 'subscribe', channel: 'room:api' });
      await s.request({ type: 'subscribe', channel: 'nohist:api' });
    }
    const res = await api(1, 'POST', '/api/publish', { channel: 'room:api', data: { text: 'hi' } });
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { offset: number; epoch: string };
    expect(body.offset).to.equal(1);
    expect(body.epoch).to.be.a('string');
    const plain = await api(2, 'POST', '/api/publish', { channel: 'nohist:api', data: 2 });
    expect(plain.status).to.equal(200);
    expect(await plain.json()).to.deep.equal({});
    for (const s of subs) {
      expect(await s.waitFrame((f) => f.type === 'message' && f.channel === 'room:api')).to.deep.equal({ type: 'message', channel: 'room:api', data: { text: 'hi' }, from: null, offset: 1, epoch: body.epoch });
      expect(await s.waitFrame((f) => f.type === 'message' && f.channel === 'nohist:api')).to.deep.equal({ type: 'message', channel: 'nohist:api', data: 2, from: null });
    }
  });

  it('POST /api/publish refuses bad bodies with 400', async () => {
    for (const body of ['{not json', { channel: 'bad channel', data: 1 }, { channel: 'room:1' }, [1]]) {
      const res = await api(0, 'POST', '/api/publish', body);
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).to.equal('bad_request');
    }
  });

  it('GET /api/presence lists members of every worker', async () => {
    const alice = await open(0, '?user=alice');
    const bob = await open(1, '?user=bob');
    const anon = await open(2);
    for (const c of [alice, bob, anon]) {
      await c.request({ type: 'subscribe', channel: 'room:pres' });
      await c.waitFrame((f) => f.type === 'join' && f.conn === c.welcome!.conn);
    }
    const res = await api(2, 'GET', '/api/presence?channel=room:pres');
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { channel: string; members: unknown[] };
    expect(body.channel).to.equal('room:pres');
    expect(body.members).to.have.deep.members([
      { user: 'alice', conn: alice.welcome!.conn },
      { user: 'bob', conn: bob.welcome!.conn },
      { user: null, conn: anon.welcome!.conn },
    ]);
    expect((await api(0, 'GET', '/api/presence?channel=')).status).to.equal(400);
    expect((await api(0, 'GET', '/api/presence')).status).to.equal(400);
  });

  it('POST /api/disconnect closes every connection of the user on every worker with 1008', async () => {
    const bobs = [await open(0, '?user=bob'), await open(1, '?user=bob'), await open(2, '?user=bob')];
    const alice = await open(1, '?user=alice');
    // The user subscriptions in Redis are in place once a direct message reaches every bob.
    await alice.request({ type: 'send', user: 'bob', data: 'ping' });
    for (const b of bobs) await b.waitFrame((f) => f.type === 'direct');
    const res = await api(2, 'POST', '/api/disconnect', { user: 'bob' });
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ user: 'bob', code: 1008 });
    for (const b of bobs) expect((await b.closed).code).to.equal(1008);
    expect(alice.ws.readyState).to.equal(alice.ws.OPEN);
    expect((await api(0, 'POST', '/api/disconnect', { user: 'not a user' })).status).to.equal(400);
  });

  it('answers 404 for unknown API routes and 503 while Redis is down', async () => {
    expect((await api(0, 'GET', '/api/nothing')).status).to.equal(404);
    await cluster.redis.stop();
    await eventually(async () => expect((await fetch(`${cluster.workers[0]!.url}/readyz`)).status).to.equal(503), { timeout: 5000 });
    const pub = await api(0, 'POST', '/api/publish', { channel: 'room:1', data: 1 });
    expect(pub.status).to.equal(503);
    expect(((await pub.json()) as { error: { code: string } }).error.code).to.equal('unavailable');
    expect((await api(0, 'POST', '/api/disconnect', { user: 'bob' })).status).to.equal(503);
    expect((await api(0, 'GET', '/api/presence?channel=room:1')).status).to.equal(503);
    expect((await api(0, 'POST', '/api/publish', { channel: 'room:1', data: 1 }, null)).status).to.equal(401);
  });
});
