import type { Context } from '../context.js';
import { CutProxy } from '../cut-proxy.js';
import type { Row } from '../result.js';
import { runContinuityTargets } from '../continuity/run-targets.js';
import { CONTINUITY_CHANNEL, Slot, quantile, until, workerLauncher } from '../continuity/servers.js';
import { type ContinuitySubscriber, type ContinuityTarget } from '../continuity/subscribers.js';

/**
 * `jitter` (after nodejs-websocket-bench's): every subscriber's TCP connection is cut for
 * `jitterCutMs` every `jitterPeriodMs` (each at its own phase) through a proxy of its own, while
 * a publisher sends stamped messages on a history channel. Reports the share of messages every
 * subscriber got (after the app's de-duplication) and the p99 latency of the replayed ones — the
 * messages published while that subscriber was cut, from their publish to their arrival (and, in
 * `extra`, from the end of the cut to their arrival).
 * Herald with @herald/client and Socket.IO with connection state recovery run the same load.
 */
export function jitterScenario(ctx: Context): Promise<Row[]> {
  return runContinuityTargets(ctx, 'jitter', '% delivered', (target, redisUrl) => runJitter(ctx, target, redisUrl));
}

async function runJitter(ctx: Context, target: ContinuityTarget, redisUrl: string): Promise<Row> {
  const { opts } = ctx;
  const launch = workerLauncher(target.name, redisUrl, `jit${process.pid}${target.name.length}:`);
  const slots: Slot[] = [];
  const proxies: CutProxy[] = [];
  const clients: Array<{ close(): void }> = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    for (let i = 0; i < opts.workers; i++) slots.push(await Slot.start(launch));
    const n = opts.continuityClients;
    ctx.progress(`jitter: ${target.name}: ${n} subscribers over ${opts.workers} workers, a cut of ${opts.jitterCutMs} ms every ${opts.jitterPeriodMs} ms`);
    const subs: ContinuitySubscriber[] = [];
    /** Per subscriber: the cut windows [start, end). */
    const cuts: Array<Array<[number, number]>> = [];
    for (let i = 0; i < n; i++) {
      const proxy = await CutProxy.start({ host: '127.0.0.1', port: slots[i % slots.length]!.port });
      proxies.push(proxy);
      const s = target.subscriber(target.url(proxy.port), CONTINUITY_CHANNEL, `j${i}`);
      clients.push(s);
      subs.push(s);
      cuts.push([]);
    }
    await Promise.all(subs.map((s) => s.ready()));
    const pub = target.publisher(target.url(slots[0]!.port), CONTINUITY_CHANNEL);
    clients.push(pub);

    // At least two cuts per subscriber, whatever --duration says.
    const runMs = Math.max(opts.durationMs, 2 * opts.jitterPeriodMs + opts.jitterCutMs);
    const started = Date.now();
    proxies.forEach((proxy, i) => {
      const first = Math.floor(((i + 0.5) / n) * opts.jitterPeriodMs);
      const cut = () => {
        const at = Date.now();
        if (at - started + opts.jitterCutMs > runMs) return;
        cuts[i]!.push([at, at + opts.jitterCutMs]);
        proxy.cut(opts.jitterCutMs);
        timers.push(setTimeout(cut, opts.jitterPeriodMs));
      };
      timers.push(setTimeout(cut, first));
    });
    const rate = opts.rates[0]!;
    const acked = new Set<number>();
    let seq = 0;
    while (Date.now() - started < runMs) {
      const next = started + (seq * 1000) / rate;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const s = ++seq;
      void pub.publish({ seq: s, t: Date.now() }).then((ok) => ok && acked.add(s));
    }
    for (const t of timers) clearTimeout(t);
    // Every subscriber back, and given time to replay.
    await until(() => subs.every((s) => s.connected() && [...acked].every((a) => s.got.has(a))), opts.jitterCutMs + 10_000, 100);

    let delivered = 0;
    const replay: number[] = [];
    const afterLink: number[] = [];
    const all: number[] = [];
    for (const [i, s] of subs.entries()) {
      for (const a of acked) {
        const g = s.got.get(a);
        if (!g) continue;
        delivered++;
        all.push(g.at - g.t);
        const cut = cuts[i]!.find(([from, to]) => g.t >= from && g.t < to);
        if (!cut) continue;
        replay.push(g.at - g.t);
        afterLink.push(g.at - cut[1]);
      }
    }
    const expected = acked.size * n;
    return {
      scenario: 'jitter',
      target: target.name,
      value: expected > 0 ? (100 * delivered) / expected : 0,
      unit: '% delivered',
      p50: quantile(replay, 0.5),
      p99: quantile(replay, 0.99),
      lost: expected - delivered,
      cpu: {},
      wall: (Date.now() - started) / 1000,
      extra: {
        subscribers: n,
        workers: opts.workers,
        published: seq,
        acked: acked.size,
        cuts: cuts.reduce((k, c) => k + c.length, 0),
        replayed: replay.length,
        replayP99Ms: quantile(replay, 0.99),
        // The part of the replay latency the product controls: from the end of the cut (the link
        // is back) to the arrival — the client's next attempt, the handshake and the replay. A
        // message published at the start of a cut waits the whole cut before it can arrive.
        afterLinkP50Ms: quantile(afterLink, 0.5),
        afterLinkP99Ms: quantile(afterLink, 0.99),
        allP99Ms: quantile(all, 0.99),
        duplicated: subs.reduce((k, s) => k + s.duplicated(), 0),
        reconnects: subs.reduce((k, s) => k + s.reconnects.length, 0),
        // Where a loss happened, for the reader of the JSON: subscribers not back at the end, and
        // acked messages missing per subscriber.
        notBack: subs.filter((s) => !s.connected()).length,
        lostBySubscriber: subs.map((s) => [...acked].filter((a) => !s.got.has(a)).length),
      },
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.close();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(slots.map((s) => s.stop()));
  }
}
