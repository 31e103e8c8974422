import { expect } from 'chai';
import { TestClient, eventually, startCluster, type TestCluster } from './helpers/index.js';

const KEY = 'depth-test-api-key';

/** A publish frame whose `data` nests `levels` arrays. */
const nested = (levels: number, id: number) => `{"type":"publish","id":${id},"channel":"room:deep","data":${'['.repeat(levels)}${']'.repeat(levels)}}`;

/** The value of the counter `name{labels}` in a Prometheus text page, 0 when absent. */
function counter(page: string, name: string, labels: string): number {
  const line = page.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/**
 * Issue 12, item 6: hostile JSON depth on a real worker process (Redis-backed, so the
 * accepted side goes through the Lua publish too). HERALD_MAX_JSON_DEPTH is set to 16 so the
 * limit, not V8's stack, decides.
 */
describe('cluster: JSON depth limit (worker process, Redis-backed)', function () {
  this.timeout(30_000);
  let cluster: TestCluster;
  const clients: TestClient[] = [];

  beforeEach(async () => {
    cluster = await startCluster(1, { HERALD_MAX_JSON_DEPTH: '16', HERALD_API_KEY: KEY });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop();
  });

  const metrics = async () => (await fetch(`${cluster.workers[0]!.url}/metrics`)).text();
  const depthLogs = () => cluster.workers[0]!.child.lines.filter((l) => l.includes('nested too deep'));

  it('answers a too-deep publish bad_request, logs it once per connection, counts each as a refused frame', async () => {
    const c = await TestClient.open(`${cluster.workers[0]!.wsUrl}/ws`);
    clients.push(c);
    expect((await c.request({ type: 'subscribe', channel: 'room:deep' })).type).to.equal('ack');
    const before = counter(await metrics(), 'herald_frames_refused_total', 'reason="depth"');

    // At the limit: the frame object is depth 1, so data may nest 15 levels.
    c.send(nested(15, 100));
    expect(await c.waitFrame((f) => f.id === 100)).to.deep.include({ type: 'ack', offset: 1 });
    await c.waitFrame((f) => f.type === 'message');

    // One level more, five times, and a hostile 5,000-level one: each answered with its id.
    for (let i = 0; i < 5; i++) c.send(nested(16, 101 + i));
    c.send(nested(5000, 106));
    await c.waitFrame((f) => f.id === 106);
    const refused = c.frames.filter((f) => typeof f.id === 'number' && f.id > 100);
    expect(refused.map((f) => [f.id, f.type, f.code])).to.deep.equal([101, 102, 103, 104, 105, 106].map((id) => [id, 'error', 'bad_request']));
    expect(refused[0]!.message).to.match(/deeper than 16/);
    // Nothing of them was published.
    expect(c.of('message')).to.have.length(1);
    expect(c.ws.readyState).to.equal(c.ws.OPEN);

    await eventually(async () => expect(counter(await metrics(), 'herald_frames_refused_total', 'reason="depth"')).to.equal(before + 6));
    expect(depthLogs(), 'one log line for the connection').to.have.length(1);
    expect(depthLogs()[0]).to.include(c.welcome!.conn as string);
    // No stack trace, no error-level line.
    expect(cluster.workers[0]!.child.lines.filter((l) => /"level":(50|60)|RangeError|stack/.test(l))).to.deep.equal([]);

    // A second connection gets its own (single) line.
    const d = await TestClient.open(`${cluster.workers[0]!.wsUrl}/ws`);
    clients.push(d);
    d.send(nested(40, 1));
    d.send(nested(40, 2));
    await d.waitFrame((f) => f.id === 2);
    expect(d.of('error').map((f) => f.code)).to.deep.equal(['bad_request', 'bad_request']);
    await eventually(() => expect(depthLogs()).to.have.length(2));
    expect(depthLogs()[1]).to.include(d.welcome!.conn as string);
  });

  it('answers POST /api/publish with a too-deep body 400 bad_request, and publishes one at the limit', async () => {
    const post = (body: string) =>
      fetch(`${cluster.workers[0]!.url}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body });
    const body = (levels: number) => `{"channel":"room:api","data":${'['.repeat(levels)}${']'.repeat(levels)}}`;

    const ok = await post(body(15));
    expect(ok.status).to.equal(200);
    expect(await ok.json()).to.deep.include({ offset: 1 });

    for (const levels of [16, 5000, 30_000]) {
      const res = await post(body(levels));
      expect(res.status, `${levels} levels`).to.equal(400);
      const answer = (await res.json()) as { error?: { code?: string; message?: string }; code?: string };
      expect(JSON.stringify(answer)).to.include('bad_request').and.to.include('deeper than 16');
    }
    // The worker is still fine and nothing more was published.
    const next = await post(body(1));
    expect(await next.json()).to.deep.include({ offset: 2 });
  });
});
