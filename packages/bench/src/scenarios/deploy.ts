import type { Context } from '../context.js';
import type { Row } from '../result.js';
import type { ServerProcess } from '../servers/server-process.js';
import { runContinuityTargets } from '../continuity/run-targets.js';
import { CONTINUITY_CHANNEL, DEPLOY_DRAIN_MS, Slot, balancerLauncher, healthyWorkers, peakRate, until, workerLauncher } from '../continuity/servers.js';
import { type ContinuityTarget } from '../continuity/subscribers.js';

/** Window over which reconnect rates are measured (shorter than a drain's 1 s spread). */
const RATE_WINDOW_MS = 200;
/** Pause between two drain batches of a Herald worker (packages/server/src/drain.ts). */
const BATCH_INTERVAL_MS = 50;

/** One drain of the run, as its worker logged it, and the reconnects it caused. */
interface DrainPhase {
  /** Connections the drain closed (the busiest worker's, for the balancer's drain request). */
  drained: number;
  /** That drain's batch rate: its largest batch, `ceil(drained / batches)`, per 50 ms, as closes per second. */
  drainBatchRatePerSec: number;
  /** Peak reconnects per second one worker took meanwhile (200 ms windows). */
  peakReconnectsPerSec: number;
}

/**
 * The batch rate of a Herald drain of `connections` over `spreadMs`, in closes per second
 * (packages/server/src/drain.ts: a batch every 50 ms, `batches = spreadMs / 50`, none larger
 * than `ceil(connections / batches)`).
 */
function drainBatchRate(connections: number, spreadMs: number): number {
  const batches = Math.max(1, Math.floor(spreadMs / BATCH_INTERVAL_MS));
  return (Math.ceil(connections / batches) * 1000) / BATCH_INTERVAL_MS;
}

/**
 * The fields of the first line `proc` logged (pino JSON) with message `msg`, waiting up to `ms`
 * for it; undefined when none came (Socket.IO has no drain and logs none).
 */
async function logged(proc: ServerProcess, msg: string, ms: number): Promise<Record<string, unknown> | undefined> {
  const tag = `"msg":${JSON.stringify(msg)}`;
  const line = await proc.waitForLine((l) => l.includes(tag), ms).catch(() => undefined);
  return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
}

/**
 * `deploy`: subscribers of a history channel and a publisher, all through herald-balancer in
 * front of `workers` processes; every worker is restarted one by one (SIGTERM, wait for the exit,
 * a new process on the same port, wait until the balancer sees it healthy), then the balancer.
 * Reports messages lost (acked but missing at a subscriber after its de-duplication) and
 * duplicated, connections dropped without 1001, the peak reconnects per second a worker took
 * (200 ms windows) during each drain beside that drain's batch rate (Herald: from the
 * connections its worker logged), and the time from the balancer's restart until every
 * subscriber is back and receives live messages. Herald with @herald/client and Socket.IO with
 * connection state recovery (behind the same balancer) run the same steps.
 */
export function deployScenario(ctx: Context): Promise<Row[]> {
  return runContinuityTargets(ctx, 'deploy', 'lost', (target, redisUrl) => runDeploy(ctx, target, redisUrl));
}

async function runDeploy(ctx: Context, target: ContinuityTarget, redisUrl: string): Promise<Row> {
  const { opts } = ctx;
  const prefix = `dep${process.pid}${target.name.length}:`;
  const launch = workerLauncher(target.name, redisUrl, prefix);
  const slots: Slot[] = [];
  const clients: Array<{ close(): void }> = [];
  let balancer: Slot | undefined;
  try {
    for (let i = 0; i < opts.workers; i++) slots.push(await Slot.start(launch));
    balancer = await Slot.start(balancerLauncher(slots, redisUrl, prefix));
    const allHealthy = () => until(async () => (await healthyWorkers(balancer!.port)) === slots.length, 20_000, 100);
    if (!(await allHealthy())) throw new Error(`deploy: ${target.name}: the balancer never saw every worker healthy`);
    const n = opts.continuityClients;
    ctx.progress(`deploy: ${target.name}: ${n} subscribers through herald-balancer, ${opts.workers} workers`);
    const url = target.url(balancer.port);
    const subs = Array.from({ length: n }, (_, i) => target.subscriber(url, CONTINUITY_CHANNEL, `d${i}`));
    clients.push(...subs);
    await Promise.all(subs.map((s) => s.ready()));
    const pub = target.publisher(url, CONTINUITY_CHANNEL);
    clients.push(pub);

    const rate = opts.rates[0]!;
    const acked = new Set<number>();
    let seq = 0;
    let publishing = true;
    const publisher = (async () => {
      const t0 = Date.now();
      while (publishing) {
        const wait = t0 + (seq * 1000) / rate - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const s = ++seq;
        void pub.publish({ seq: s, t: Date.now() }).then((ok) => ok && acked.add(s));
      }
    })();

    const started = Date.now();
    // Each drain's rate follows from the connections that worker held when it drained, which
    // its own log line gives: not subscribers / workers, since rendezvous hashing splits them
    // unevenly, the publisher is a connection too, and in a rolling restart the clients of the
    // workers restarted earlier stay on the others, so the last one drains nearly all of them.
    // Socket.IO's servers exit on SIGTERM: no drain, no such line.
    const drains = target.name === 'herald';
    const restarts: Array<{ from: number; drained: number | undefined }> = [];
    for (const [i, slot] of slots.entries()) {
      ctx.progress(`deploy: ${target.name}: restarting worker ${i + 1}/${slots.length}`);
      const from = Date.now();
      const old = slot.proc;
      await slot.restart();
      restarts.push({ from, drained: drains ? ((await logged(old, 'draining', 0))?.connections as number | undefined) : undefined });
      if (!(await allHealthy())) throw new Error(`deploy: ${target.name}: worker ${i + 1} did not come back`);
    }
    ctx.progress(`deploy: ${target.name}: restarting the balancer`);
    const balancerAt = Date.now();
    await balancer.restart();
    // The balancer exits once its tunnels ended, i.e. after every worker started its drain request.
    const balancerDrains = drains ? await Promise.all(slots.map((s) => logged(s.proc, 'draining the connections of a balancer', 2000))) : [];
    await allHealthy();
    // Steady: every subscriber connected and receiving what is published from now on.
    const mark = seq;
    const steady = await until(() => subs.every((s) => s.connected() && [...s.got.keys()].some((k) => k > mark)), 30_000, 50);
    const steadyMs = Date.now() - balancerAt;
    publishing = false;
    await publisher;
    await until(() => subs.every((s) => [...acked].every((a) => s.got.has(a))), 10_000, 100);

    let lost = 0;
    for (const s of subs) for (const a of acked) if (!s.got.has(a)) lost++;
    /** Peak reconnects/s one worker took among the reconnects in [from, to). */
    const peakPerWorker = (from: number, to: number) => {
      const byNode = new Map<string, number[]>();
      for (const s of subs) for (const r of s.reconnects) if (r.at >= from && r.at < to) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r.at]);
      return Math.max(0, ...[...byNode.values()].map((times) => peakRate(times, RATE_WINDOW_MS)));
    };
    const phase = (drained: number | undefined, spreadMs: number, from: number, to: number): DrainPhase | undefined =>
      drained === undefined ? undefined : { drained, drainBatchRatePerSec: drainBatchRate(drained, spreadMs), peakReconnectsPerSec: peakPerWorker(from, to) };
    const workerRestarts = restarts.map((r, i) => phase(r.drained, DEPLOY_DRAIN_MS / 2, r.from, restarts[i + 1]?.from ?? balancerAt));
    const busiest = balancerDrains.filter((d) => d !== undefined).sort((a, b) => (b.connections as number) - (a.connections as number))[0];
    const balancerRestart = phase(busiest?.connections as number | undefined, (busiest?.spreadMs as number | undefined) ?? 0, balancerAt, Infinity);
    const phases = [...workerRestarts, balancerRestart];
    const closes = subs.flatMap((s) => s.closes);
    return {
      scenario: 'deploy',
      target: target.name,
      value: lost,
      unit: 'lost',
      lost,
      cpu: {},
      wall: (Date.now() - started) / 1000,
      extra: {
        subscribers: n,
        workers: opts.workers,
        published: seq,
        acked: acked.size,
        duplicated: subs.reduce((k, s) => k + s.duplicated(), 0),
        closes: closes.length,
        closesWithout1001: closes.filter((c) => c !== 1001).length,
        peakReconnectsPerSecPerWorker: peakPerWorker(started, Infinity),
        // Worker restarts (paced by the workers' drains) apart from the balancer restart (its
        // drain request is paced too, but the clients then wait for the new balancer and come
        // back as their backoff jitter lets them).
        peakDuringWorkerRestarts: peakPerWorker(started, balancerAt),
        peakAfterBalancerRestart: peakPerWorker(balancerAt, Infinity),
        // Per drain (Herald only: Socket.IO has none): each peak against its own drain's rate.
        workerRestarts: workerRestarts.every(Boolean) ? workerRestarts : undefined,
        balancerRestart,
        paced: phases.every(Boolean) ? phases.every((p) => p!.peakReconnectsPerSec <= 2 * p!.drainBatchRatePerSec) : undefined,
        steady,
        steadyMs,
      },
    };
  } finally {
    for (const c of clients) c.close();
    await balancer?.stop();
    await Promise.all(slots.map((s) => s.stop()));
  }
}
