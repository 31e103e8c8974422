import { Histogram } from '../histogram.js';
import { nowMs } from '../clock.js';
import { openSubscriber, type Subscriber } from './clients.js';
import type { CollectResult, OpenResult, OpenTask } from './protocol.js';

/** The subscribed connections of one agent and what they received since the last reset. */
export class SubscriberPool {
  private readonly subs: Subscriber[] = [];
  private readonly hist = new Histogram();
  private received = 0;
  private dropped = 0;
  private closing = false;
  private waiter?: { target: number; resolve: () => void };

  /** Opens `task.conns` connections at the ramp rate with bounded concurrency. */
  async open(task: OpenTask): Promise<OpenResult> {
    const started = performance.now();
    const errors: string[] = [];
    let failed = 0;
    let next = 0;
    const concurrency = task.concurrency ?? 200;
    const onStamp = (sent: number) => {
      this.received++;
      this.hist.record((nowMs() - sent) * 1000);
      if (this.waiter && this.received >= this.waiter.target) this.waiter.resolve();
    };
    const onClose = () => {
      if (!this.closing) this.dropped++;
    };
    const lane = async () => {
      for (;;) {
        const i = next++;
        if (i >= task.conns) return;
        if (task.rampPerSec > 0) {
          // Pace by schedule, not by sleeping a fixed gap, so slow handshakes do not slow the ramp.
          const due = started + (i * 1000) / task.rampPerSec - performance.now();
          if (due > 0) await new Promise((r) => setTimeout(r, due));
        }
        try {
          this.subs.push(await openSubscriber(task.proto, task.urls[i % task.urls.length]!, task.channel, onStamp, onClose, task.localAddress));
        } catch (err) {
          failed++;
          if (errors.length < 5) errors.push((err as Error).message);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, task.conns) }, lane));
    return { opened: task.conns - failed, failed, errors, ms: performance.now() - started };
  }

  /** Starts a measuring window. */
  reset(): void {
    this.hist.reset();
    this.received = 0;
    this.dropped = 0;
  }

  /** What arrived since the last reset. */
  collect(): CollectResult {
    return { conns: this.subs.length, received: this.received, dropped: this.dropped, hist: this.hist.toJSON() };
  }

  /** Resolves once every connection got `perConn` messages since the reset, or after `ms`. */
  async await(perConn: number, ms: number): Promise<CollectResult> {
    const target = perConn * this.subs.length;
    if (this.received < target) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => ((this.waiter = undefined), resolve()), ms);
        this.waiter = { target, resolve: () => (clearTimeout(timer), (this.waiter = undefined), resolve()) };
      });
    }
    return this.collect();
  }

  /** Closes every connection. */
  close(): void {
    this.closing = true;
    for (const s of this.subs.splice(0)) s.close();
  }
}
