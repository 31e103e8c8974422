import { expect } from 'chai';
import { encodeBinaryFrame, decodeBinaryFrame } from '@herald/protocol';
import type { HeraldWorker } from '@herald/server';
import { TestClient, startInProcess, eventually } from './helpers/index.js';

describe('worker: /ws channel protocol (memory broker)', () => {
  let worker: HeraldWorker;
  let base: string;
  const clients: TestClient[] = [];
  const open = async (query = '') => {
    const c = await TestClient.open(`${base}/ws${query}`);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    ({ worker, ws: base } = await startInProcess({ nodeId: 'w1', namespaces: { nohist: { historySize: 0 }, quiet: { presence: false }, ro: { clientPublish: false } } }));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker.close();
  });

  it('sends the welcome frame first', async () => {
    const c = await open('?user=alice');
    expect(c.frames[0]).to.deep.include({ type: 'welcome', node: 'w1', user: 'alice', heartbeat: 25000 });
    expect(c.frames[0]!.conn).to.be.a('string').with.length.above(8);
    const anon = await open();
    expect(anon.welcome!.user).to.equal(null);
    expect(anon.welcome!.conn).to.not.equal(c.welcome!.conn);
  });

  it('refuses an invalid ?user= with 400 before the upgrade', async () => {
    const err = await TestClient.connect(`${base}/ws?user=${encodeURIComponent('a b')}`).catch((e) => e);
    expect(err.status).to.equal(400);
  });

  it('delivers a publish to every subscriber with offset, epoch and from', async () => {
    const [a, b, c] = [await open('?user=alice'), await open('?user=bob'), await open()];
    for (const x of [a, b]) expect(await x.request({ type: 'subscribe', channel: 'room:1' })).to.deep.include({ type: 'ack', offset: 0, recovered: false });
    const ack = await c.request({ type: 'publish', channel: 'room:1', data: { text: 'hi' } });
    expect(ack).to.deep.include({ type: 'ack', offset: 1 });
    for (const x of [a, b]) {
      const m = await x.waitFrame((f) => f.type === 'message');
      expect(m).to.deep.equal({ type: 'message', channel: 'room:1', data: { text: 'hi' }, from: null, offset: 1, epoch: ack.epoch });
    }
    expect(c.of('message')).to.have.length(0);
  });

  it('omits offsets on channels without history', async () => {
    const a = await open('?user=alice');
    expect(await a.request({ type: 'subscribe', channel: 'nohist:x' })).to.deep.equal({ type: 'ack', id: 1 });
    expect(await a.request({ type: 'publish', channel: 'nohist:x', data: 1 })).to.deep.equal({ type: 'ack', id: 2 });
    expect(await a.waitFrame((f) => f.type === 'message')).to.deep.equal({ type: 'message', channel: 'nohist:x', data: 1, from: 'alice' });
  });

  it('stops delivery after unsubscribe and answers not_found for unknown subscriptions', async () => {
    const [a, p] = [await open(), await open()];
    await a.request({ type: 'subscribe', channel: 'room:2' });
    expect(await a.request({ type: 'unsubscribe', channel: 'room:2' })).to.deep.include({ type: 'ack' });
    expect(await a.request({ type: 'unsubscribe', channel: 'room:2' })).to.deep.include({ type: 'error', code: 'not_found' });
    await p.request({ type: 'publish', channel: 'room:2', data: 'x' });
    // A later message on another channel proves the first one was not delivered in between.
    await a.request({ type: 'subscribe', channel: 'room:3' });
    await p.request({ type: 'publish', channel: 'room:3', data: 'y' });
    await a.waitFrame((f) => f.type === 'message' && f.channel === 'room:3');
    expect(a.of('message', 'room:2')).to.have.length(0);
    expect(worker.hub.channelCount).to.equal(1);
  });

  it('answers a repeated subscribe idempotently', async () => {
    const a = await open('?user=alice');
    await a.request({ type: 'subscribe', channel: 'room:4' });
    expect(await a.request({ type: 'subscribe', channel: 'room:4' })).to.deep.include({ type: 'ack', offset: 0 });
    await a.request({ type: 'publish', channel: 'room:4', data: 1 });
    await a.waitFrame((f) => f.type === 'message');
    a.send({ type: 'ping', id: 99 });
    await a.waitFrame((f) => f.type === 'pong');
    expect(a.of('message')).to.have.length(1);
    expect(a.of('join')).to.have.length(1);
  });

  it('refuses publishing in a namespace where clients may not publish', async () => {
    const a = await open();
    expect(await a.request({ type: 'publish', channel: 'ro:news', data: 1 })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await a.request({ type: 'subscribe', channel: 'ro:news' })).to.deep.include({ type: 'ack' });
  });

  it('tracks presence with join and leave events', async () => {
    const a = await open('?user=alice');
    await a.request({ type: 'subscribe', channel: 'room:5' });
    const b = await open('?user=bob');
    await b.request({ type: 'subscribe', channel: 'room:5' });
    const join = await a.waitFrame((f) => f.type === 'join' && f.user === 'bob');
    expect(join).to.deep.equal({ type: 'join', channel: 'room:5', user: 'bob', conn: b.welcome!.conn });
    const p = await a.request({ type: 'presence', channel: 'room:5' });
    expect(p.members).to.have.deep.members([
      { user: 'alice', conn: a.welcome!.conn },
      { user: 'bob', conn: b.welcome!.conn },
    ]);
    await b.close();
    const leave = await a.waitFrame((f) => f.type === 'leave');
    expect(leave).to.deep.equal({ type: 'leave', channel: 'room:5', user: 'bob', conn: b.welcome!.conn });
    expect((await a.request({ type: 'presence', channel: 'room:5' })).members).to.deep.equal([{ user: 'alice', conn: a.welcome!.conn }]);
  });

  it('sends no presence events where presence is off', async () => {
    const a = await open('?user=alice');
    await a.request({ type: 'subscribe', channel: 'quiet:1' });
    expect(await a.request({ type: 'presence', channel: 'quiet:1' })).to.deep.include({ type: 'error', code: 'bad_request' });
    await a.request({ type: 'publish', channel: 'quiet:1', data: 1 });
    await a.waitFrame((f) => f.type === 'message');
    expect(a.of('join')).to.have.length(0);
  });

  it('delivers direct messages to every connection of a user', async () => {
    const [b1, b2, a] = [await open('?user=bob'), await open('?user=bob'), await open('?user=alice')];
    expect(await a.request({ type: 'send', user: 'bob', data: { hi: 1 } })).to.deep.include({ type: 'ack' });
    for (const b of [b1, b2]) expect(await b.waitFrame((f) => f.type === 'direct')).to.deep.equal({ type: 'direct', from: 'alice', data: { hi: 1 } });
    expect(a.of('direct')).to.have.length(0);
  });

  it('answers ping with pong', async () => {
    const a = await open();
    a.send({ type: 'ping' });
    expect(await a.waitFrame((f) => f.type === 'pong')).to.deep.equal({ type: 'pong' });
    a.send({ type: 'ping', id: 42 });
    expect(await a.waitFrame((f) => f.type === 'pong' && f.id === 42)).to.deep.equal({ type: 'pong', id: 42 });
  });

  it('publishes binary channel frames to binary subscribers', async () => {
    const [a, b] = [await open(), await open('?user=bob')];
    await a.request({ type: 'subscribe', channel: 'bin:1' });
    b.ws.send(encodeBinaryFrame('bin:1', new Uint8Array([1, 2, 3, 250])));
    const frame = await a.waitBinary();
    const decoded = decodeBinaryFrame(frame);
    expect(decoded.ok && decoded.frame.channel).to.equal('bin:1');
    expect(decoded.ok && [...decoded.frame.payload]).to.deep.equal([1, 2, 3, 250]);
  });

  it('recovers missed messages in order with since, then goes live', async () => {
    const [a, p] = [await open('?user=alice'), await open()];
    const sub = await a.request({ type: 'subscribe', channel: 'room:r' });
    for (let i = 1; i <= 3; i++) await p.request({ type: 'publish', channel: 'room:r', data: i });
    await a.waitCount(() => a.of('message').length, 3);
    await a.close();
    for (let i = 4; i <= 6; i++) await p.request({ type: 'publish', channel: 'room:r', data: i });
    const a2 = await open('?user=alice');
    const ack = await a2.request({ type: 'subscribe', channel: 'room:r', since: { offset: 3, epoch: sub.epoch } });
    expect(ack).to.deep.include({ type: 'ack', offset: 6, epoch: sub.epoch, recovered: true });
    const before = a2.frames.slice(0, a2.frames.indexOf(ack)).filter((f) => f.type === 'message');
    expect(before.map((m) => m.data)).to.deep.equal([4, 5, 6]);
    expect(before.map((m) => m.offset)).to.deep.equal([4, 5, 6]);
    await p.request({ type: 'publish', channel: 'room:r', data: 7 });
    await a2.waitFrame((f) => f.type === 'message' && f.data === 7);
    expect(a2.of('message').map((m) => m.data)).to.deep.equal([4, 5, 6, 7]);
  });

  it('answers recovered:false for an unknown epoch and for a trimmed gap', async () => {
    ({ worker, ws: base } = await (async () => {
      await worker.close();
      return startInProcess({ namespaces: { small: { historySize: 2 } } });
    })());
    const [a, p] = [await open(), await open()];
    const first = await p.request({ type: 'publish', channel: 'small:1', data: 1 });
    for (let i = 2; i <= 4; i++) await p.request({ type: 'publish', channel: 'small:1', data: i });
    const trimmed = await a.request({ type: 'subscribe', channel: 'small:1', since: { offset: 1, epoch: first.epoch } });
    expect(trimmed).to.deep.include({ recovered: false, offset: 4 });
    expect(a.of('message').map((m) => m.data)).to.deep.equal([3, 4]);
    const b = await open();
    const other = await b.request({ type: 'subscribe', channel: 'small:1', since: { offset: 1, epoch: 'not-it' } });
    expect(other).to.deep.include({ recovered: false, offset: 4, epoch: first.epoch });
    expect(b.of('message')).to.have.length(0);
  });

  it('keeps ordering under concurrent publishers', async () => {
    const a = await open();
    await a.request({ type: 'subscribe', channel: 'room:o' });
    const pubs = [await open(), await open()];
    await Promise.all(pubs.map((p, i) => Promise.all(Array.from({ length: 50 }, (_, k) => p.request({ type: 'publish', channel: 'room:o', data: `${i}-${k}` })))));
    await a.waitCount(() => a.of('message').length, 100);
    const offsets = a.of('message').map((m) => m.offset);
    expect(offsets).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
    for (const i of [0, 1]) {
      const mine = a.of('message').map((m) => m.data as string).filter((d) => d.startsWith(`${i}-`));
      expect(mine).to.deep.equal(Array.from({ length: 50 }, (_, k) => `${i}-${k}`));
    }
  });

  it('cleans up subscriptions and presence when a client goes away', async () => {
    const a = await open('?user=alice');
    await a.request({ type: 'subscribe', channel: 'room:c' });
    await a.request({ type: 'subscribe', channel: 'room:d' });
    expect(worker.hub.channelCount).to.equal(2);
    a.ws.terminate();
    await eventually(() => expect(worker.hub.channelCount).to.equal(0));
    const b = await open();
    expect((await b.request({ type: 'presence', channel: 'room:c' })).members).to.deep.equal([]);
  });
});
