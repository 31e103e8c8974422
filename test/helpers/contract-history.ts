import { expect } from 'chai';
import type { Broker, History, Recovery } from '@herald/server';
import { BrokerRecorder, plainMessage } from './broker-recorder.js';
import { eventually } from './wait.js';

/** A broker, whose history half is under test. */
export interface HistoryFixture {
  broker: Broker;
  close(): Promise<void>;
}

/** The broker's `History` half, with recovered messages compared by value ({@link plainMessage}). */
function historyOf(broker: Broker): History {
  return {
    position: (channel) => broker.position(channel),
    recover: async (channel, since): Promise<Recovery> => {
      const r = await broker.recover(channel, since);
      return { ...r, messages: r.messages.map(plainMessage) };
    },
  };
}

/**
 * The rules of the `History` interface (packages/server/src/history.ts), which every `Broker`
 * implements (history is part of the broker: append and publish are one atomic step).
 */
export function historyContract(name: string, make: () => Promise<HistoryFixture>): void {
  describe(`History contract: ${name}`, () => {
    let fx: HistoryFixture & { history: History };
    const policy = { size: 5, ttlMs: 60_000 };
    const publish = (channel: string, data: unknown, p = policy) => fx.broker.publish({ kind: 'message', channel, data, from: 'alice' }, p);

    beforeEach(async () => {
      const made = await make();
      fx = { ...made, history: historyOf(made.broker) };
      await fx.broker.start(new BrokerRecorder());
    });
    afterEach(async () => {
      await fx.close();
    });

    it('gives an empty stream offset 0 and an epoch that stays until the first publish', async () => {
      const a = await fx.history.position('room:e');
      expect(a.offset).to.equal(0);
      expect(a.epoch).to.be.a('string').with.length.above(0);
      expect(await fx.history.position('room:e')).to.deep.equal(a);
      const p = await publish('room:e', 1);
      expect(p).to.deep.equal({ offset: 1, epoch: a.epoch });
      const r = await fx.history.recover('room:e', a);
      expect(r.recovered).to.equal(true);
      expect(r.messages.map((m) => m.data)).to.deep.equal([1]);
    });

    it('recovers the messages after a position, in order, with their positions', async () => {
      const positions = [];
      for (let i = 1; i <= 4; i++) positions.push(await publish('room:r', { i }));
      const epoch = positions[0]!.epoch;
      const r = await fx.history.recover('room:r', { offset: 1, epoch });
      expect(r).to.deep.equal({
        recovered: true,
        position: { offset: 4, epoch },
        messages: [2, 3, 4].map((i) => ({ kind: 'message', channel: 'room:r', data: { i }, from: 'alice', offset: i, epoch })),
      });
      const none = await fx.history.recover('room:r', { offset: 4, epoch });
      expect(none).to.deep.equal({ recovered: true, position: { offset: 4, epoch }, messages: [] });
    });

    it('keeps binary payloads', async () => {
      const p = await fx.broker.publish({ kind: 'message', channel: 'room:b', bytes: Uint8Array.from([0, 10, 64, 255]), from: null }, policy);
      const r = await fx.history.recover('room:b', { offset: 0, epoch: p!.epoch });
      expect(r.messages).to.have.length(1);
      expect(Buffer.from(r.messages[0]!.bytes!)).to.deep.equal(Buffer.from([0, 10, 64, 255]));
      expect(r.messages[0]!.data).to.equal(undefined);
    });

    it('answers recovered:false with the retained messages when the gap was trimmed', async () => {
      let last;
      for (let i = 1; i <= 8; i++) last = await publish('room:t', i);
      const r = await fx.history.recover('room:t', { offset: 1, epoch: last!.epoch });
      expect(r.recovered).to.equal(false);
      expect(r.messages.map((m) => m.offset)).to.deep.equal([4, 5, 6, 7, 8]);
      const ok = await fx.history.recover('room:t', { offset: 3, epoch: last!.epoch });
      expect(ok.recovered).to.equal(true);
      expect(ok.messages.map((m) => m.offset)).to.deep.equal([4, 5, 6, 7, 8]);
    });

    it('answers recovered:false and nothing for another epoch', async () => {
      await publish('room:x', 1);
      const r = await fx.history.recover('room:x', { offset: 0, epoch: 'not-this-one' });
      expect(r.recovered).to.equal(false);
      expect(r.messages).to.deep.equal([]);
      expect(r.position.offset).to.equal(1);
    });

    it('starts a new epoch after the history expired', async () => {
      const first = await publish('room:ttl', 1, { size: 5, ttlMs: 100 });
      const next = await eventually(async () => {
        const p = await fx.history.position('room:ttl');
        expect(p.epoch).to.not.equal(first!.epoch);
        return p;
      }, { timeout: 3000 });
      expect(next.offset).to.equal(0);
      expect((await fx.history.recover('room:ttl', first!)).recovered).to.equal(false);
      expect(await publish('room:ttl', 2)).to.deep.equal({ offset: 1, epoch: next.epoch });
    });

    it('keeps streams of different channels apart', async () => {
      await publish('room:1', 'a');
      await publish('room:1', 'b');
      expect((await publish('room:2', 'c'))!.offset).to.equal(1);
      expect((await fx.history.position('room:1')).offset).to.equal(2);
    });
  });
}
