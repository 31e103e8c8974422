import { expect } from 'chai';
import type { StreamPosition } from '@herald/protocol';
import { randomBytes } from 'node:crypto';
import type { Broker } from '@herald/server';
import { BrokerRecorder } from './broker-recorder.js';
import { eventually } from './wait.js';

/** A broker under test and how to dispose of it. */
export interface BrokerFixture {
  broker: Broker;
  close(): Promise<void>;
}

const HISTORY = { size: 10, ttlMs: 60_000 };

/**
 * The rules of the `Broker` interface (packages/server/src/broker.ts), for any implementation
 * on a single node. `make` gives a fresh, isolated broker per test.
 */
export function brokerContract(name: string, make: () => Promise<BrokerFixture>): void {
  describe(`Broker contract: ${name}`, () => {
    let fx: BrokerFixture;
    let rec: BrokerRecorder;

    beforeEach(async () => {
      fx = await make();
      rec = new BrokerRecorder();
      await fx.broker.start(rec);
    });
    afterEach(async () => {
      await fx.close();
    });

    /** Publishes a history message and waits until it is back: everything sent before it has arrived. */
    async function barrier(channel: string): Promise<void> {
      await fx.broker.subscribe(channel);
      const mark = randomBytes(4).toString('hex');
      await fx.broker.publish({ kind: 'message', channel, data: mark, from: null }, HISTORY);
      await eventually(() => expect(rec.events.some((e) => e.kind === 'message' && e.data === mark)).to.equal(true));
    }

    it('is available after start', () => {
      expect(fx.broker.available).to.equal(true);
    });

    it('delivers a message to this node exactly once, never from inside publish', async () => {
      await fx.broker.subscribe('room:a');
      rec.inside = true;
      const p = fx.broker.publish({ kind: 'message', channel: 'room:a', data: { n: 1 }, from: 'alice' });
      rec.inside = false;
      expect(await p).to.equal(undefined);
      await barrier('barrier:a');
      expect(rec.messages('room:a')).to.deep.equal([{ kind: 'message', channel: 'room:a', data: { n: 1 }, from: 'alice' }]);
      expect(rec.reentered).to.equal(false);
    });

    it('does not deliver channels it is not subscribed to, nor after unsubscribe', async () => {
      await fx.broker.subscribe('room:b');
      await fx.broker.unsubscribe('room:b');
      await fx.broker.publish({ kind: 'message', channel: 'room:b', data: 1, from: null });
      await fx.broker.publish({ kind: 'message', channel: 'room:c', data: 1, from: null }, HISTORY);
      await barrier('barrier:b');
      expect(rec.events.filter((e) => e.channel !== 'barrier:b')).to.deep.equal([]);
    });

    it('delivers presence events', async () => {
      await fx.broker.subscribe('room:p');
      await fx.broker.publish({ kind: 'join', channel: 'room:p', user: 'bob', conn: 'c1' });
      await fx.broker.publish({ kind: 'leave', channel: 'room:p', user: null, conn: 'c2' });
      await barrier('barrier:p');
      expect(rec.events.filter((e) => e.channel === 'room:p')).to.deep.equal([
        { kind: 'join', channel: 'room:p', user: 'bob', conn: 'c1' },
        { kind: 'leave', channel: 'room:p', user: null, conn: 'c2' },
      ]);
    });

    it('appends history messages with growing offsets under one epoch and delivers them in order', async () => {
      await fx.broker.subscribe('room:h');
      const positions: Array<StreamPosition | undefined> = [];
      for (let i = 1; i <= 5; i++) positions.push(await fx.broker.publish({ kind: 'message', channel: 'room:h', data: i, from: null }, HISTORY));
      expect(positions.map((p) => p!.offset)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(new Set(positions.map((p) => p!.epoch)).size).to.equal(1);
      await eventually(() => expect(rec.messages('room:h')).to.have.length(5));
      const got = rec.messages('room:h') as Array<{ offset: number; epoch: string; data: number }>;
      expect(got.map((m) => [m.offset, m.data])).to.deep.equal([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
      expect(got.every((m) => m.epoch === positions[0]!.epoch)).to.equal(true);
    });

    it('keeps concurrent history publishes in offset order', async () => {
      await fx.broker.subscribe('room:o');
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => fx.broker.publish({ kind: 'message', channel: 'room:o', data: i, from: null }, HISTORY)));
      expect(all.map((p) => p!.offset).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
      await eventually(() => expect(rec.messages('room:o')).to.have.length(50));
      expect(rec.messages('room:o').map((m) => (m as { offset: number }).offset)).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('carries binary payloads byte for byte', async () => {
      await fx.broker.subscribe('room:bin');
      const bytes = Uint8Array.from([0, 1, 10, 13, 64, 255, 32]);
      await fx.broker.publish({ kind: 'message', channel: 'room:bin', bytes, from: null });
      await fx.broker.publish({ kind: 'message', channel: 'room:bin', bytes: Uint8Array.from([10, 10]), from: null }, HISTORY);
      await eventually(() => expect(rec.messages('room:bin')).to.have.length(2));
      const [a, b] = rec.messages('room:bin') as Array<{ bytes: Uint8Array }>;
      expect(Buffer.from(a!.bytes)).to.deep.equal(Buffer.from(bytes));
      expect(Buffer.from(b!.bytes)).to.deep.equal(Buffer.from([10, 10]));
    });

    it('delivers direct messages once, only for subscribed users', async () => {
      await fx.broker.subscribeUser('bob');
      await fx.broker.sendDirect({ user: 'bob', from: 'alice', data: { hi: 1 } });
      await fx.broker.sendDirect({ user: 'carol', from: 'alice', data: 2 });
      await fx.broker.unsubscribeUser('bob');
      await fx.broker.sendDirect({ user: 'bob', from: 'alice', data: 3 });
      await barrier('barrier:d');
      expect(rec.directs).to.deep.equal([{ user: 'bob', from: 'alice', data: { hi: 1 } }]);
    });

    it('runs commands on this node exactly once', async () => {
      await fx.broker.command({ kind: 'disconnect', user: 'mallory' });
      await barrier('barrier:c');
      expect(rec.commands).to.deep.equal([{ kind: 'disconnect', user: 'mallory' }]);
    });
  });
}
