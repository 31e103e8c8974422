import { expect } from 'chai';
import { WebSocket } from 'ws';
import { Client, type ChannelMessage } from '@herald/client';
import { eventually } from './wait.js';

/**
 * What the rolling-deploy tests (test/deploy-rolling.test.ts, test/deploy/compose-up.test.ts)
 * share: a fleet of reconnecting subscribers and a publisher, and the pacing bound their
 * reconnects are held to.
 */

/** Pause between two drain batches (packages/server/src/drain.ts). */
const BATCH_INTERVAL_MS = 50;
/** Window over which reconnect rates are measured: shorter than any drain's spread (1 s and more). */
const RATE_WINDOW_MS = 200;

/**
 * The closes per second of a worker draining `connections` over `spreadMs` in batches every
 * 50 ms (packages/server/src/drain.ts): the rate every drain (worker SIGTERM, balancer drain
 * request) runs at. A worker's own drain spreads over half its HERALD_DRAIN_MS, and so does the
 * balancer's drain request (WORKER_SPREAD_SHARE).
 */
export function drainBatchRate(connections: number, spreadMs: number): number {
  const batches = Math.max(1, Math.floor(spreadMs / BATCH_INTERVAL_MS));
  return (Math.ceil(connections / batches) * 1000) / BATCH_INTERVAL_MS;
}

/** Highest number of `times` within any `windowMs`, as a rate per second. */
function peakRate(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! >= windowMs) i++;
    peak = Math.max(peak, j - i + 1);
  }
  return (peak * 1000) / windowMs;
}

/** Options of {@link startFleet}. */
export interface FleetOptions {
  /** Subscribers: about 20 per worker is enough that an unpaced drain would break the rate bound. @default 60 */
  subscribers?: number;
  /** How long finish() waits for every subscriber to be connected again. @default 20000 */
  settleMs?: number;
}

/**
 * Reconnecting @herald/client subscribers of one history channel and a publisher with sequence
 * numbers (one publish every 50 ms), all through `url`, recording what a deploy must not break:
 * every message by offset (de-duplication by offset, as the SDK's app would), the close code of
 * every established connection that ended, and every reconnect with the worker it landed on.
 * Every client is pushed onto `clients`, for the caller to close.
 */
export async function startFleet(url: string, clients: Client[], options: FleetOptions = {}) {
  const subscribers = options.subscribers ?? 60;
  const settleMs = options.settleMs ?? 20_000;
  const channel = 'room:deploy';
  const closeCodes: number[] = [];
  /** Per subscriber: offset → message. */
  const received: Array<Map<number, ChannelMessage>> = [];
  const reconnects: Array<{ node: string; at: number }> = [];
  const clientOptions = { WebSocket, minReconnectDelay: 100, maxReconnectDelay: 2000 };
  const fleet = Array.from({ length: subscribers }, (_, i) => {
    const c = new Client(url, { ...clientOptions, params: { sid: `sub${i}` } });
    c.on('error', () => {});
    // Closes of established connections only: failed attempts (503 while the balancer drains,
    // refused while it restarts) are not connections dropped.
    c.on('state', (e: { oldState: string; newState: string; code?: number }) => {
      if (e.oldState === 'connected' && e.newState === 'reconnecting') closeCodes.push(e.code ?? -1);
    });
    let welcomed = false;
    c.on('welcome', (w: { node: string }) => {
      if (welcomed) reconnects.push({ node: w.node, at: Date.now() });
      welcomed = true;
    });
    const byOffset = new Map<number, ChannelMessage>();
    received.push(byOffset);
    const sub = c.subscribe(channel, {
      onMessage: (m) => {
        if (m.offset !== undefined) byOffset.set(m.offset, m);
      },
    });
    clients.push(c);
    c.connect();
    return { c, sub };
  });
  // Subscribed (acked), not just connected: a message published before would not be theirs.
  await Promise.all(fleet.map(({ sub }) => sub.ready()));
  const subs = fleet.map(({ c }) => c);
  const pub = new Client(url, { ...clientOptions, params: { sid: 'pub' } });
  pub.on('error', () => {});
  clients.push(pub);
  pub.connect();
  await pub.ready();

  const acked = new Map<number, number>(); // seq -> offset
  let seq = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      const n = ++seq;
      try {
        const ack = await pub.publish(channel, { n });
        if (ack.offset !== undefined) acked.set(n, ack.offset);
      } catch {
        // Not acked (timeout while reconnecting): not counted as sent.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  return {
    subs,
    reconnects,
    /** Stops the publisher (idempotent; finish() does it too). */
    async stop(): Promise<void> {
      publishing = false;
      await publisher;
    },
    /** Connections per worker now (the drain rate of the next drain depends on it). */
    perWorker(): Map<string, number> {
      const m = new Map<string, number>();
      for (const c of [...subs, pub]) if (c.welcome) m.set(c.welcome.node, (m.get(c.welcome.node) ?? 0) + 1);
      return m;
    },
    /** Waits until every subscriber is connected again. */
    async settled(): Promise<void> {
      await eventually(() => expect(subs.every((c) => c.state === 'connected')).to.equal(true), { timeout: settleMs });
    },
    /**
     * Stops publishing, then checks: nothing lost, nothing duplicated after de-dup by offset,
     * every close a 1001, every subscriber moved at least once.
     *
     * @returns messages acked and closes seen, for the log
     */
    async finish(): Promise<{ acked: number; closes: number }> {
      await this.settled();
      publishing = false;
      await publisher;
      expect(acked.size).to.be.greaterThan(40);
      const offsets = [...acked.values()];
      await eventually(
        () => {
          for (const byOffset of received) for (const o of offsets) expect(byOffset.has(o), `offset ${o}`).to.equal(true);
        },
        { timeout: 15_000 },
      );
      for (const byOffset of received) {
        const seqs = [...byOffset.values()].map((m) => (m.data as { n: number }).n);
        expect(new Set(seqs).size, 'one offset per message').to.equal(seqs.length);
      }
      expect(closeCodes.length, 'every subscriber was moved at least once').to.be.at.least(subscribers);
      expect(closeCodes.filter((c) => c !== 1001), `close codes ${closeCodes.join(',')}`).to.deep.equal([]);
      return { acked: acked.size, closes: closeCodes.length };
    },
  };
}

/** A fleet of {@link startFleet}. */
export type Fleet = Awaited<ReturnType<typeof startFleet>>;

/** The reconnects that landed on each worker since `from`, and their peak rate per second (200 ms windows). */
export function reconnectPeaks(fleet: Fleet, from: number): { byNode: Map<string, number[]>; peaks: Record<string, number> } {
  const byNode = new Map<string, number[]>();
  for (const r of fleet.reconnects) if (r.at >= from) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r.at]);
  return { byNode, peaks: Object.fromEntries([...byNode].map(([node, times]) => [node, peakRate(times, RATE_WINDOW_MS)])) };
}

/**
 * Asserts the reconnects that landed on each worker since `from` peaked at no more than twice
 * the drain batch rate of the drain that caused them (`bound`), and returns the peaks for the log.
 */
export function assertPaced(fleet: Fleet, from: number, bound: number, what: string): Record<string, number> {
  const { byNode, peaks } = reconnectPeaks(fleet, from);
  if (process.env.HERALD_TEST_VERBOSE) {
    const buckets = [...byNode].map(([node, times]) => `${node}: ${times.map((t) => Math.floor((t - from) / 100)).join(',')}`);
    console.log(`${what} (100 ms buckets):\n${buckets.join('\n')}`);
  }
  expect(byNode.size, `${what}: reconnects were measured`).to.be.at.least(1);
  for (const [node, peak] of Object.entries(peaks)) expect(peak, `${what}: peak reconnects/s on ${node} (bound ${bound})`).to.be.at.most(bound);
  return peaks;
}
