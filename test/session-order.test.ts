import { expect } from 'chai';
import { DEFAULT_RATE_LIMITS } from '@herald/server';
import { TestClient, startInProcess } from './helpers/index.js';

describe('session: order, answers and JSON depth (memory broker)', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  async function open(limits = {}) {
    const w = await startInProcess({ limits: { rate: { ...DEFAULT_RATE_LIMITS, framesPerSec: 0 }, ...limits } });
    const clients: TestClient[] = [];
    stop = async () => {
      for (const c of clients) c.ws.terminate();
      await w.worker.close();
    };
    const c = await TestClient.open(`${w.ws}/ws`);
    clients.push(c);
    return c;
  }

  it('answers a frame nested deeper than the limit bad_request with its id, answered in its turn', async () => {
    const c = await open();
    const deep = '{"type":"publish","id":7,"channel":"a","data":' + '['.repeat(4100) + ']'.repeat(4100) + '}';
    c.send(deep);
    const answer = await c.waitFrame((f) => f.id === 7);
    expect(answer).to.include({ type: 'error', code: 'bad_request' });
    expect(answer.message).to.match(/deeper than 64/);
    c.send({ type: 'ping', id: 8 });
    expect(await c.waitFrame((f) => f.id === 8)).to.include({ type: 'pong' });
  });

  it('answers every frame with an id exactly once, in id order, whatever the error cap', async () => {
    const c = await open({ maxFramesInFlight: 1000 });
    const n = 500;
    for (let i = 1; i <= n; i++) c.send({ type: 'unsubscribe', channel: `room:${i}`, id: i });
    await c.waitCount(() => c.frames.filter((f) => f.type === 'error').length, n);
    const ids = c.frames.filter((f) => f.type === 'error').map((f) => f.id);
    expect(ids).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
  });

  it('delivers a publish sent right after a subscribe to that subscription, acks in frame order', async () => {
    const c = await open();
    c.send({ type: 'subscribe', channel: 'room:o', id: 1 });
    c.send({ type: 'publish', channel: 'room:o', data: 'mine', id: 2 });
    c.send({ type: 'unsubscribe', channel: 'room:o', id: 3 });
    c.send({ type: 'unsubscribe', channel: 'room:o', id: 4 });
    await c.waitFrame((f) => f.id === 4);
    const answers = c.frames.filter((f) => f.type === 'ack' || f.type === 'error');
    expect(answers.map((f) => [f.id, f.type])).to.deep.equal([[1, 'ack'], [2, 'ack'], [3, 'ack'], [4, 'error']]);
    expect(answers[0]).to.include({ recovered: false });
    expect(c.of('message', 'room:o').map((m) => m.data)).to.deep.equal(['mine']);
  });
});
