import { expect } from 'chai';
import { WebSocket } from 'ws';
import { Client, type ChannelMessage, type LostEvent, type StreamPosition } from '@herald/client';
import { TestClient, eventually, startCluster, startRedis, type TestCluster } from './helpers/index.js';

/** Short lease, command timeout and probe, so a freeze is detected within a second. */
const FAST = { HERALD_LEASE_MS: '2000', HERALD_REDIS_COMMAND_TIMEOUT_MS: '500', HERALD_REDIS_PROBE_MS: '200' };

type Frame = Awaited<ReturnType<TestClient['request']>>;

/** What a subscriber received on a history channel: value and position, in arrival order. */
const received = (c: TestClient, channel: string) => c.of('message', channel).map((f) => ({ data: f.data, offset: f.offset, epoch: f.epoch }));

/**
 * Issue 12, items 2 and 3 (SPEC §5 continuity), with a real redis-server that is SIGKILLed and
 * restarted empty on the same port, or frozen with SIGSTOP, and three real workers.
 */
describe('cluster continuity (redis restart and freeze, 3 workers)', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let frozen = false;
  const clients: TestClient[] = [];
  const sdkClients: Client[] = [];
  const open = async (worker: number) => {
    const c = await TestClient.open(`${cluster.workers[worker]!.wsUrl}/ws`);
    clients.push(c);
    return c;
  };
  const readyz = async (i: number) => (await fetch(`${cluster.workers[i]!.url}/readyz`)).status;
  const allReady = (want: boolean, timeout: number) =>
    eventually(async () => {
      for (let i = 0; i < 3; i++) expect(await readyz(i)).to.equal(want ? 200 : 503);
    }, { timeout, interval: 50 });

  beforeEach(async () => {
    cluster = await startCluster(3, FAST);
    frozen = false;
  });
  afterEach(async () => {
    if (frozen) process.kill(cluster.redis.child.pid!, 'SIGCONT');
    for (const c of sdkClients.splice(0)) c.close();
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await cluster.stop();
  });

  it('Redis restarted empty: publishes acked after the restart reach every subscriber that stayed connected, after a lost frame onto the new epoch', async () => {
    const subs = [await open(0), await open(1), await open(2)];
    for (const c of subs) {
      await c.request({ type: 'subscribe', channel: 'room:c' });
      await c.request({ type: 'subscribe', channel: 'nohist:c' });
    }
    // The client SDK on worker 1: it must tell the app before it takes the new position.
    const sdk = new Client(`${cluster.workers[1]!.wsUrl}/ws`, { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 500 });
    sdkClients.push(sdk);
    const sdkMessages: ChannelMessage[] = [];
    const sdkLost: Array<{ event: LostEvent; positionThen: StreamPosition | undefined }> = [];
    const sub = sdk.subscribe('room:c', {
      onMessage: (m) => sdkMessages.push(m),
      onLost: (event) => sdkLost.push({ event, positionThen: sub.position }),
    });
    sdk.connect();
    await sub.ready();

    const pub = await open(0);
    const old: Frame[] = [];
    for (let i = 1; i <= 3; i++) old.push(await pub.request({ type: 'publish', channel: 'room:c', data: `old-${i}` }));
    for (const c of subs) await c.waitCount(() => c.of('message', 'room:c').length, 3);
    await eventually(() => expect(sdkMessages).to.have.length(3));
    const oldEpoch = old[0]!.epoch as string;

    const port = cluster.redis.port;
    await cluster.redis.stop('SIGKILL');
    cluster.redis = await startRedis(port);
    // Publish as soon as the publishing worker takes it: the other workers' subscriptions are
    // typically not back yet (the messages acked meanwhile were lost before, issue 12).
    const acked: Array<{ data: number; offset: number; epoch: string }> = [];
    const first = await eventually(async () => {
      const a = await pub.request({ type: 'publish', channel: 'room:c', data: 1 }, 3000);
      expect(a.type).to.equal('ack');
      return a;
    }, { timeout: 10_000, interval: 20 });
    acked.push({ data: 1, offset: first.offset, epoch: first.epoch });
    for (let i = 2; i <= 20; i++) {
      const a = await pub.request({ type: 'publish', channel: 'room:c', data: i });
      expect(a).to.deep.include({ type: 'ack' });
      acked.push({ data: i, offset: a.offset, epoch: a.epoch });
    }
    const epoch = acked[0]!.epoch;
    expect(epoch).to.not.equal(oldEpoch);
    expect(acked.map((a) => a.offset)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));

    const expected = [...old.map((a, i) => ({ data: `old-${i + 1}`, offset: a.offset, epoch: oldEpoch })), ...acked];
    for (const c of subs) {
      await c.waitCount(() => c.of('message', 'room:c').length, 23);
      expect(received(c, 'room:c')).to.deep.equal(expected);
      // Exactly one lost frame, onto the new epoch from its first offset, before its first message.
      expect(c.of('lost', 'room:c')).to.deep.equal([{ type: 'lost', channel: 'room:c', offset: 0, epoch }]);
      const lostAt = c.frames.findIndex((f) => f.type === 'lost' && f.channel === 'room:c');
      const firstNew = c.frames.findIndex((f) => f.type === 'message' && f.epoch === epoch);
      expect(lostAt).to.be.below(firstNew);
      // The channel without history cannot be filled in: it is reported, once.
      await c.waitFrame((f) => f.type === 'lost' && f.channel === 'nohist:c');
      expect(c.of('lost', 'nohist:c')).to.deep.equal([{ type: 'lost', channel: 'nohist:c' }]);
    }

    // The SDK told the app first (its position was still the old one), then took the new one.
    await eventually(() => expect(sdkMessages).to.have.length(23));
    expect(sdkMessages.map((m) => m.data)).to.deep.equal(expected.map((e) => e.data));
    expect(sdkLost).to.deep.equal([
      { event: { channel: 'room:c', previous: { offset: 3, epoch: oldEpoch }, offset: 0, epoch }, positionThen: { offset: 3, epoch: oldEpoch } },
    ]);
    expect(sub.position).to.deep.equal({ offset: 20, epoch });

    // A client that comes back with its old position is brought onto the new epoch, told first.
    const late = await open(2);
    const ack = await late.request({ type: 'subscribe', channel: 'room:c', since: { offset: 3, epoch: oldEpoch } });
    expect(ack).to.deep.include({ type: 'ack', offset: 20, epoch, recovered: false });
    expect(late.of('lost', 'room:c')).to.deep.equal([{ type: 'lost', channel: 'room:c', offset: 0, epoch }]);
    expect(received(late, 'room:c')).to.deep.equal(acked);
    expect(late.frames.findIndex((f) => f.type === 'lost')).to.be.below(late.frames.findIndex((f) => f.type === 'message'));
  });

  it('Redis frozen (SIGSTOP, SIGCONT): every worker delivers the same messages in offset order with no hole, and a publish answered unavailable reaches all subscribers or none', async () => {
    const subs = [await open(0), await open(1), await open(2)];
    for (const c of subs) {
      await c.request({ type: 'subscribe', channel: 'room:f' });
      await c.request({ type: 'subscribe', channel: 'nohist:f' });
    }
    const publishers = [await open(0), await open(1)];
    const answers = new Map<string, Frame>();
    let running = true;
    const counts = () => {
      const all = [...answers.values()];
      return { ok: all.filter((a) => a.type === 'ack').length, unavailable: all.filter((a) => a.type === 'error' && a.code === 'unavailable').length };
    };
    // Two publishers on two workers, each one publish at a time, each with its own sequence.
    const loops = publishers.map(async (p, n) => {
      for (let i = 0; running; i++) {
        const data = `p${n}-${i}`;
        const a = await p.request({ type: 'publish', channel: 'room:f', data }, 5000);
        answers.set(data, a);
        if (a.type === 'error') await new Promise((r) => setTimeout(r, 20)); // pacing, not synchronisation
      }
    });
    await eventually(() => expect(counts().ok).to.be.at.least(10));
    process.kill(cluster.redis.child.pid!, 'SIGSTOP');
    frozen = true;
    await allReady(false, 5000);
    await eventually(() => expect(counts().unavailable).to.be.at.least(6), { timeout: 10_000 });
    process.kill(cluster.redis.child.pid!, 'SIGCONT');
    frozen = false;
    await allReady(true, 10_000);
    const okBefore = counts().ok;
    await eventually(() => expect(counts().ok).to.be.at.least(okBefore + 10), { timeout: 10_000 });
    running = false;
    await Promise.all(loops);
    const end = await publishers[0]!.request({ type: 'publish', channel: 'room:f', data: 'end' });
    expect(end.type).to.equal('ack');
    for (const c of subs) await c.waitFrame((f) => f.type === 'message' && f.data === 'end', 10_000);

    const lists = subs.map((c) => received(c, 'room:f'));
    // No hole, no duplicate, one epoch: offsets 1..end on every worker.
    for (const list of lists) {
      expect(list.map((m) => m.offset)).to.deep.equal(Array.from({ length: end.offset }, (_, i) => i + 1));
      expect(new Set(list.map((m) => m.epoch))).to.deep.equal(new Set([end.epoch]));
    }
    // The same messages everywhere.
    expect(lists[1]).to.deep.equal(lists[0]);
    expect(lists[2]).to.deep.equal(lists[0]);
    const delivered = lists.map((list) => new Set(list.map((m) => m.data)));
    for (const [data, a] of answers) {
      const reached = delivered.filter((d) => d.has(data)).length;
      if (a.type === 'ack') expect(reached, `${data} (acked)`).to.equal(3);
      else expect([0, 3], `${data} (${a.code}) reached ${reached} of 3 workers`).to.include(reached);
    }
    expect(counts().unavailable).to.be.at.least(6);
    // Each worker's subscription was dropped by the probe: the channel without history says so.
    for (const c of subs) expect(c.of('lost', 'nohist:f').length).to.be.at.least(1);
  });
});
