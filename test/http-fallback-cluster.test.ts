import { expect } from 'chai';
import { Client, State, type ChannelMessage, type ClientOptions, type TransportName } from '@herald/client';
import { sessionOwner } from '@herald/protocol';
import { eventually, startCluster, TestClient, type TestCluster } from './helpers/index.js';
import { HttpTestClient } from './helpers/http-session.js';
import { nodesForKeys, startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { nextState } from './helpers/client-state.js';

describe('cluster: HTTP fallback without stickiness (redis-server, two worker processes)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  const clients: Array<HttpTestClient | TestClient> = [];

  before(async () => {
    cluster = await startCluster(2, { HERALD_POLL_HOLD_MS: '2000' });
  });
  after(async () => {
    for (const c of clients.splice(0)) {
      if (c instanceof HttpTestClient) c.stop();
      else await c.close();
    }
    await cluster?.stop(true);
  });

  it('delivers and answers a POST /emit that lands on the worker that does not hold the session', async () => {
    const [w0, w1] = cluster.workers as [(typeof cluster.workers)[0], (typeof cluster.workers)[0]];
    const sse = await HttpTestClient.open(w0.url, 'sse', '?user=alice');
    clients.push(sse);
    expect(sessionOwner(sse.session)).to.equal('w0');
    const bob = await TestClient.open(`${w1.wsUrl}/ws?user=bob`);
    clients.push(bob);
    await bob.request({ type: 'subscribe', channel: 'room:f' });
    // Subscribe and publish through w1: forwarded to w0 over its node channel, answered on the stream.
    expect(await sse.emit([{ type: 'subscribe', channel: 'room:f', id: 1 }, { type: 'publish', channel: 'room:f', data: 'via w1', id: 2 }], w1.url)).to.equal(204);
    const acks = await sse.waitUntil(() => (sse.of('ack').length >= 2 ? sse.of('ack') : undefined), 10_000, 'two acks');
    expect(acks.map((a) => a.id)).to.deep.equal([1, 2]);
    expect(acks[1]!.offset).to.equal(1);
    expect(await bob.waitFrame((f) => f.type === 'message' && f.data === 'via w1')).to.include({ from: 'alice', offset: 1 });
    expect(sse.of('message', 'room:f').map((m) => m.data)).to.deep.equal(['via w1']);
  });

  it('forwards a GET /poll to the owner and answers it from there, acknowledgements included', async () => {
    const [w0, w1] = cluster.workers as [(typeof cluster.workers)[0], (typeof cluster.workers)[0]];
    const first = (await fetch(`${w1.url}/poll?user=carol`).then((r) => r.json())) as { session: string; last: number; frames: Array<Record<string, unknown>> };
    expect(sessionOwner(first.session)).to.equal('w1');
    expect(first.frames[0]).to.include({ type: 'welcome', node: 'w1' });
    // Emit and poll through w0 only: every request is forwarded to w1.
    const emit = await fetch(`${w0.url}/emit?session=${first.session}`, { method: 'POST', body: JSON.stringify([{ type: 'ping', id: 5 }, { type: 'presence', channel: 'room:f', id: 6 }]) });
    expect(emit.status).to.equal(204);
    const got: Array<Record<string, unknown>> = [];
    let last = first.last;
    while (got.length < 2) {
      const res = (await fetch(`${w0.url}/poll?session=${first.session}&ack=${last}`).then((r) => r.json())) as typeof first;
      got.push(...res.frames);
      last = res.last;
    }
    expect(got.map((f) => [f.type, f.id])).to.deep.equal([['pong', 5], ['ack', 6]]);
    expect((got[1]!.members as Array<{ user: string }>).map((m) => m.user).sort()).to.deep.equal(['alice', 'bob']);
  });

  it('holds a forwarded poll for HERALD_POLL_HOLD_MS (2 s here), then answers it empty', async () => {
    const [w0, w1] = cluster.workers as [(typeof cluster.workers)[0], (typeof cluster.workers)[0]];
    const first = (await fetch(`${w0.url}/poll`).then((r) => r.json())) as { session: string; last: number };
    const t0 = Date.now();
    const held = (await fetch(`${w1.url}/poll?session=${first.session}&ack=${first.last}`).then((r) => r.json())) as { frames: unknown[] };
    expect(held.frames).to.deep.equal([]);
    expect(Date.now() - t0).to.be.within(1500, 8000);
  });

  it('answers 404 at once for a session whose owner is not listening', async () => {
    const t0 = Date.now();
    const res = await fetch(`${cluster.workers[0]!.url}/emit?session=w9~AAAAAAAAAAAAAAAA`, { method: 'POST', body: '[{"type":"ping"}]' });
    expect(res.status).to.equal(404);
    const poll = await fetch(`${cluster.workers[1]!.url}/poll?session=w9~AAAAAAAAAAAAAAAA`);
    expect(poll.status).to.equal(404);
    expect(Date.now() - t0).to.be.below(3000);
  });
});

describe('cluster: HTTP fallback recovery across a worker kill (redis-server, 3 workers, herald-balancer)', function () {
  this.timeout(90_000);
  let cluster: TestCluster;
  let balancer: BalancerProcess;
  const clients: Client[] = [];

  beforeEach(async () => {
    cluster = await startCluster(3, { HERALD_LEASE_MS: '3000' });
    balancer = await startBalancer({ HERALD_WORKERS: cluster.workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    await eventually(async () => expect((await balancer.status()).healthy).to.equal(3), { timeout: 10_000 });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await balancer?.stop('SIGKILL');
    await cluster?.stop(true);
  });

  const client = (sid: string, options: ClientOptions = {}) => {
    const c = new Client(`${balancer.wsUrl}/ws`, { params: { sid }, minReconnectDelay: 50, maxReconnectDelay: 500, ...options });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };

  for (const transport of ['sse', 'long-polling'] as TransportName[]) {
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      it(`over ${transport}, after ${signal} of its worker, recovers every message of a history channel exactly once`, async () => {
        const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
        const map = await nodesForKeys(balancer.url, keys);
        const subSid = keys[0]!;
        const pubSid = keys.find((k) => map.get(k) !== map.get(subSid))!;
        const sub = client(subSid, { transports: [transport] });
        const got: ChannelMessage[] = [];
        const channel = `room:${transport}-${signal}`;
        const s = sub.subscribe(channel, { onMessage: (m) => got.push(m) });
        sub.connect();
        const first = await sub.ready();
        expect(first.node).to.equal(map.get(subSid));
        await s.ready();
        const pub = client(pubSid, { transports: ['long-polling'] });
        pub.connect();
        expect((await pub.ready()).node).to.not.equal(first.node);
        const victim = cluster.workers.find((w) => w.node === first.node)!;
        const total = 40;
        const lost = nextState(sub, State.Reconnecting);
        for (let n = 1; n <= total; n++) {
          await pub.publish(channel, { n });
          if (n === 10) {
            await eventually(() => expect(got).to.have.length(10));
            void victim.stop(signal);
            const change = await lost;
            expect(change.transport).to.equal(transport);
            expect(change.code).to.equal(signal === 'SIGTERM' ? 1001 : 1006);
          }
        }
        await eventually(() => expect(got).to.have.length(total), { timeout: 20_000 });
        expect(sub.state).to.equal(State.Connected);
        expect(sub.transport).to.equal(transport);
        expect(sub.welcome?.node).to.not.equal(first.node);
        expect(got.map((m) => (m.data as { n: number }).n)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
        expect(got.map((m) => m.offset)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
      });
    }
  }
});
