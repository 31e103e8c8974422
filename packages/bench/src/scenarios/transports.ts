import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { Client, type TransportName } from '@herald/client';
import type { Context } from '../context.js';
import { Histogram } from '../histogram.js';
import { measured } from '../measure.js';
import type { Row } from '../result.js';
import { startHerald } from '../servers/launch.js';
import { selected } from '../options.js';

const TRANSPORTS: TransportName[] = ['websocket', 'sse', 'long-polling'];

/**
 * A TCP relay in front of the worker that counts the bytes crossing it in each direction: what
 * the wire carries, HTTP request and response headers, SSE framing and WebSocket framing included.
 */
class CountingRelay {
  up = 0;
  down = 0;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: number) {
    this.server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => this.sockets.delete(s));
      }
      client.on('data', (d) => (this.up += d.length));
      upstream.on('data', (d) => (this.down += d.length));
      client.pipe(upstream).on('close', () => client.destroy());
      upstream.pipe(client).on('close', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  reset(): void {
    this.up = this.down = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Whether a run kept the rate: everything delivered, p99 within the limit. */
function passes(run: RateRun, p99LimitMs: number): boolean {
  return run.received === run.sent && run.hist.percentile(0.99) / 1000 <= p99LimitMs;
}

/** One measured run of a transport at one rate. */
interface RateRun {
  rate: number;
  sent: number;
  /** Publishes the server refused or that timed out (e.g. `rate_limited`: too many frames in flight). */
  refused: number;
  received: number;
  hist: Histogram;
  wall: number;
  serverCpu: number;
  /** Bytes the publisher put on the wire toward the server. */
  pubUp: number;
  /** Bytes the publisher got back (acks, poll answers). */
  pubDown: number;
  /** Bytes the subscriber got (deliveries). */
  subDown: number;
  /** Bytes the subscriber sent (polls, keep-alives). */
  subUp: number;
}

/** Payload of a timed message: the send time (ms, high resolution) and padding to `size` bytes. */
function payload(size: number): { t: number; pad: string } {
  return { t: performance.now(), pad: 'x'.repeat(Math.max(0, size - 30)) };
}

/**
 * `transports`: WebSocket vs SSE vs long-polling on the same Herald worker with the same load
 * (one publisher, one subscriber, each over the transport under test, through byte-counting
 * relays). Per transport: bytes on the wire per message each way, p50/p99 delivery latency and
 * worker CPU µs per message at the first rate of `--rates`, the highest rate whose p99 stays under
 * `--p99-limit` with nothing lost, and memory per idle session (`--idle-conns`, capped at 500;
 * heap + external after a forced GC).
 */
export async function transportsScenario(ctx: Context): Promise<Row[]> {
  const { opts } = ctx;
  // The publisher is open-loop (paced by the clock, not by acks): frames in flight are not capped
  // here, so a slow moment shows as latency rather than as `rate_limited` refusals.
  const herald = await startHerald(1, undefined, { HERALD_MAX_FRAMES_IN_FLIGHT: '100000' });
  const rows: Row[] = [];
  try {
    const port = herald.ports[0]!;
    for (const transport of TRANSPORTS) {
      if (!selected(opts, `herald-${transport}`) && !selected(opts, transport)) continue;
      ctx.progress(`transports: ${transport}`);
      const pubRelay = new CountingRelay(port);
      const subRelay = new CountingRelay(port);
      const [pubPort, subPort] = [await pubRelay.listen(), await subRelay.listen()];
      const options = { WebSocket, transports: [transport], pingInterval: 0, requestTimeout: 30_000, maxQueue: 100_000 };
      const pub = new Client(`ws://127.0.0.1:${pubPort}/ws`, options);
      const sub = new Client(`ws://127.0.0.1:${subPort}/ws`, options);
      for (const c of [pub, sub]) c.on('error', () => {});
      const channel = `bench:transports-${transport}`;
      let onTimed: ((sentAt: number) => void) | undefined;
      const subscription = sub.subscribe(channel, { onMessage: (m) => onTimed?.((m.data as { t: number }).t) });
      pub.connect();
      sub.connect();
      try {
        await Promise.all([pub.ready(30_000), sub.ready(30_000), subscription.ready()]);
        const runs: RateRun[] = [];
        for (const rate of opts.rates) {
          // A failing step is run once more before the search stops: on a shared machine one
          // scheduling hiccup can push a single p99 over the limit.
          let ok = false;
          for (let attempt = 0; attempt < 2 && !ok; attempt++) {
            const run = await runRate(herald.pids(), pub, channel, rate, opts.stepMs, opts.size, pubRelay, subRelay, (fn) => (onTimed = fn));
            ok = passes(run, opts.p99LimitMs);
            if (ok || attempt === 1) runs.push(run);
            ctx.progress(`  ${transport} @${rate}/s: ${run.received}/${run.sent} delivered, ${run.refused} refused, p99 ${(run.hist.percentile(0.99) / 1000).toFixed(1)} ms ${ok ? 'ok' : 'over'}`);
          }
          if (!ok) break;
        }
        pub.close();
        sub.close();
        const mem = await idleMemory(herald, port, transport, Math.min(opts.idleConns, 500), ctx);
        rows.push(rowOf(transport, runs, opts.p99LimitMs, mem));
      } finally {
        pub.close();
        sub.close();
        await pubRelay.close();
        await subRelay.close();
      }
    }
  } finally {
    await herald.stop();
  }
  sameRateCost(rows);
  for (const line of transportTable(rows)) ctx.progress(line);
  return rows;
}

/**
 * CPU per message is compared at one rate for all: the highest every transport sustained (more
 * messages than at the first rate, so the worker's fixed per-second costs and /proc's 10 ms ticks
 * weigh least). Without a common passing rate, the first rate's figure stays.
 */
function sameRateCost(rows: Row[]): void {
  const common = Math.min(...rows.map((r) => r.value));
  if (!(common > 0)) return;
  for (const r of rows) {
    const at = (r.extra?.rates as Array<{ rate: number; received: number; sent: number; cpuUsPerMsg: number | null }> | undefined)?.filter((x) => x.rate === common && x.received === x.sent).at(-1);
    if (at?.cpuUsPerMsg != null) {
      r.cost = at.cpuUsPerMsg;
      r.extra!.costRate = common;
    }
  }
}

/** The figures the main table has no column for: bytes on the wire and memory, one line per transport. */
export function transportTable(rows: Row[]): string[] {
  const f = (n: unknown, d = 0) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(d) : '-');
  const lines = ['transport      | B/msg client→server | B/msg server→client | ack B/msg | receiver polls B/msg | p50 ms | p99 ms | µs CPU/msg | max msg/s | KB/idle session'];
  for (const r of rows) {
    const e = r.extra ?? {};
    lines.push(
      `${r.target.replace('herald ', '').padEnd(14)} | ${f(e.bytesUpPerMsg).padStart(19)} | ${f(e.bytesDownPerMsg).padStart(19)} | ${f(e.ackBytesPerMsg).padStart(9)} | ${f(e.receiverUpPerMsg).padStart(20)} | ${f(r.p50, 2).padStart(6)} | ${f(r.p99, 2).padStart(6)} | ${f(r.cost).padStart(10)} | ${f(r.value).padStart(9)} | ${f(typeof e.memPerIdleSessionBytes === 'number' ? e.memPerIdleSessionBytes / 1024 : undefined, 1).padStart(15)}`,
    );
  }
  return lines;
}

async function runRate(
  serverPids: number[],
  pub: Client,
  channel: string,
  rate: number,
  ms: number,
  size: number,
  pubRelay: CountingRelay,
  subRelay: CountingRelay,
  listen: (fn: (sentAt: number) => void) => void,
): Promise<RateRun> {
  const hist = new Histogram();
  let received = 0;
  listen((sentAt) => {
    received++;
    hist.record((performance.now() - sentAt) * 1000);
  });
  pubRelay.reset();
  subRelay.reset();
  const total = Math.max(1, Math.round((rate * ms) / 1000));
  let sent = 0;
  let refused = 0;
  const m = await measured({ server: () => serverPids }, async () => {
    const start = performance.now();
    const acks: Promise<unknown>[] = [];
    // Paced by the clock (not by acks): the publisher keeps the rate whatever the latency.
    while (sent < total) {
      const due = start + (sent * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      acks.push(pub.publish(channel, payload(size)).catch(() => void refused++));
      sent++;
    }
    await Promise.all(acks);
    // Deliveries still in flight get a moment (bounded) to arrive.
    const deadline = performance.now() + 5000;
    while (received < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  });
  return { rate, sent, refused, received, hist, wall: m.wall, serverCpu: m.cpu.server ?? 0, pubUp: pubRelay.up, pubDown: pubRelay.down, subDown: subRelay.down, subUp: subRelay.up };
}

/** Worker memory per idle subscribed session of `transport` (after a forced GC), in bytes. */
async function idleMemory(herald: Awaited<ReturnType<typeof startHerald>>, port: number, transport: TransportName, n: number, ctx: Context): Promise<number | undefined> {
  const proc = herald.procs[0]!;
  let before: number;
  try {
    const m = await proc.gcAndMeasure();
    before = m.heapUsed + m.external;
  } catch {
    return undefined;
  }
  const clients: Client[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const c = new Client(`ws://127.0.0.1:${port}/ws`, { WebSocket, transports: [transport], pingInterval: 0 });
      c.on('error', () => {});
      c.subscribe(`bench:idle-${i % 10}`);
      c.connect();
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.ready(60_000)));
    const m = await proc.gcAndMeasure();
    const after = m.heapUsed + m.external;
    ctx.progress(`  ${n} idle ${transport} sessions: ${((after - before) / n / 1024).toFixed(1)} KB each (heap + external)`);
    return (after - before) / n;
  } finally {
    for (const c of clients) c.close();
  }
}

/**
 * Latency and bytes come from the first rate of `--rates`: the same fixed load for every
 * transport (CPU per message too, until {@link sameRateCost} moves it to a higher common rate).
 * The highest passing rate is the row's value.
 */
function rowOf(transport: TransportName, runs: RateRun[], p99LimitMs: number, memPerSession: number | undefined): Row {
  const fixed = runs[0]!;
  const passing = runs.filter((r) => passes(r, p99LimitMs));
  const best = passing.at(-1);
  const costRun = fixed;
  const per = (bytes: number, r: RateRun) => (r.received > 0 ? bytes / r.received : NaN);
  return {
    scenario: 'transports',
    target: `herald ${transport}`,
    value: best?.rate ?? 0,
    unit: 'msg/s',
    p50: fixed.hist.percentile(0.5) / 1000,
    p99: fixed.hist.percentile(0.99) / 1000,
    cost: costRun.received > 0 ? (costRun.serverCpu * 1e6) / costRun.received : undefined,
    lost: fixed.sent - fixed.received,
    cpu: { server: costRun.serverCpu },
    wall: costRun.wall,
    extra: {
      fixedRate: fixed.rate,
      bytesUpPerMsg: per(fixed.pubUp, fixed),
      ackBytesPerMsg: per(fixed.pubDown, fixed),
      bytesDownPerMsg: per(fixed.subDown, fixed),
      receiverUpPerMsg: per(fixed.subUp, fixed),
      memPerIdleSessionBytes: memPerSession,
      rates: runs.map((r) => ({ rate: r.rate, sent: r.sent, refused: r.refused, received: r.received, p50: r.hist.percentile(0.5) / 1000, p99: r.hist.percentile(0.99) / 1000, cpuUsPerMsg: r.received > 0 ? (r.serverCpu * 1e6) / r.received : null })),
    },
  };
}
