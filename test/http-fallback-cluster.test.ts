import { expect } from 'chai';
import { sessionOwner } from '@herald/protocol';
import { startCluster, TestClient, type TestCluster } from './helpers/index.js';
import { HttpTestClient } from './helpers/http-session.js';

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

  it('answers 404 at once for a session whose owner is not listening', async () => {
    const t0 = Date.now();
    const res = await fetch(`${cluster.workers[0]!.url}/emit?session=w9~AAAAAAAAAAAAAAAA`, { method: 'POST', body: '[{"type":"ping"}]' });
    expect(res.status).to.equal(404);
    const poll = await fetch(`${cluster.workers[1]!.url}/poll?session=w9~AAAAAAAAAAAAAAAA`);
    expect(poll.status).to.equal(404);
    expect(Date.now() - t0).to.be.below(3000);
  });
});
