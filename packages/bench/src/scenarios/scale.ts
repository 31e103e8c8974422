import { AgentPool, split } from '../agent-pool.js';
import type { CollectResult, OpenResult, PublishResult } from '../agent/protocol.js';
import type { Context } from '../context.js';
import { Histogram } from '../histogram.js';
import { measured } from '../measure.js';
import { ratio, skippedRow, type Row } from '../result.js';
import { heraldSupportsRedisCluster, startHerald, startRedis } from '../servers/launch.js';
import { RedisCluster } from '../servers/redis-cluster.js';
import { SkipError } from '../skip-error.js';
import { runFanoutTarget } from './fanout.js';

/** A worker holds at most this many connections: a process may hold 20,000 descriptors here. */
export const SCALE_CONNS_PER_WORKER = 19_000;
/** Connections one load agent holds at most (its own 20,000 descriptors, with a margin). */
export const SCALE_CONNS_PER_AGENT = 14_000;
/** Issue 14 targets: RSS per idle connection, broadcast p99, cluster fan-out vs one Redis. */
export const SCALE_GOALS = { kbPerConn: 8, broadcastP99Ms: 1000, clusterRatio: 0.8 };
/** How long the broadcast may take to reach everyone before the missing count as lost. */
const BROADCAST_WAIT_MS = 30_000;
const CHANNEL = 'bench:scale';

/** Sum of `herald_connections` in a worker's `/metrics`. */
async function connectionsOf(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('herald_connections'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/**
 * `scale` (issue 14.4): N idle subscribed connections over W Herald workers on one real
 * redis-server, from several load agents each on its own 127.0.0.x source address; reports the
 * ramp rate, RSS per connection per worker, one broadcast to all of them (p50/p99 delivery), and
 * fan-out throughput on a Redis Cluster vs a single Redis (the cluster row is skipped, with the
 * reason, when the built herald-worker does not read `HERALD_REDIS_CLUSTER`).
 */
export async function scaleScenario(ctx: Context): Promise<Row[]> {
  const { opts } = ctx;
  const n = opts.scaleConns;
  const w = opts.scaleWorkers;
  const perWorker = Math.ceil(n / w);
  if (perWorker > SCALE_CONNS_PER_WORKER) {
    throw new Error(`scale: ${n} connections over ${w} workers is ${perWorker} per worker, above ${SCALE_CONNS_PER_WORKER} (20,000 descriptors per process): add --scale-workers`);
  }
  const rows: Row[] = [];
  const redis = await startRedis();
  try {
    await holdAndBroadcast(ctx, rows, redis.url, redis.proc.pids(), n, w, perWorker);
    await clusterFanout(ctx, rows, redis.url, redis.proc.pids());
  } finally {
    await redis.proc.stop();
  }
  return rows;
}

async function holdAndBroadcast(ctx: Context, rows: Row[], redisUrl: string, redisPids: number[], n: number, w: number, perWorker: number): Promise<void> {
  const { opts } = ctx;
  const dep = await startHerald(w, redisUrl, { HERALD_MAX_CONNECTIONS: String(perWorker + 100) });
  const agents = Math.max(2, Math.ceil(n / SCALE_CONNS_PER_AGENT));
  // Subscribers on `agents` processes; the publisher on one more of its own.
  const pool = new AgentPool(agents + 1);
  const label = `herald ×${w}`;
  try {
    const before = await Promise.all(dep.procs.map((p) => p.gcAndMeasure()));
    const shares = split(n, agents);
    ctx.progress(`scale: opening ${n} idle subscribed connections over ${w} workers from ${agents} agents (127.0.0.2–127.0.0.${agents + 1})`);
    const m = await measured({ server: () => dep.pids(), redis: () => redisPids, loadgen: () => pool.pids() }, () =>
      pool.all<OpenResult>((i) =>
        i < agents && shares[i]! > 0
          ? // One source address per agent: each has its own ephemeral port range (~28,000 ports).
            { cmd: 'open', proto: 'herald', urls: dep.wsBases, conns: shares[i]!, channel: CHANNEL, rampPerSec: 0, localAddress: `127.0.0.${i + 2}` }
          : undefined,
      ),
    );
    const opened = m.result.reduce((s, r) => s + (r?.opened ?? 0), 0);
    const failed = m.result.reduce((s, r) => s + (r?.failed ?? 0), 0);
    const rampMs = Math.max(...m.result.map((r) => r?.ms ?? 0));
    const rampRate = rampMs > 0 ? (opened * 1000) / rampMs : 0;
    ctx.progress(`scale: ${opened} open (${failed} failed) in ${(rampMs / 1000).toFixed(1)} s: ${rampRate.toFixed(0)} conn/s`);
    rows.push({
      scenario: 'scale', target: `${label} ramp`, value: rampRate, unit: 'conn/s', lost: failed,
      cpu: m.cpu, cpuPerProcess: m.perProcess, wall: m.wall, loadgenSaturated: m.loadgenSaturated, busyCores: m.busyCores,
      extra: { opened, failed, rampMs, errors: m.result.flatMap((r) => r?.errors ?? []).slice(0, 5) },
    });

    const after = await Promise.all(dep.procs.map((p) => p.gcAndMeasure()));
    const counts = await Promise.all(dep.ports.map(connectionsOf));
    const perWorkerKB = dep.procs.map((_, i) => (counts[i]! > 0 ? (after[i]!.rss - before[i]!.rss) / counts[i]! / 1024 : NaN));
    const heapKB = dep.procs.map((_, i) =>
      counts[i]! > 0 ? (after[i]!.heapUsed + after[i]!.external - before[i]!.heapUsed - before[i]!.external) / counts[i]! / 1024 : NaN,
    );
    const total = counts.reduce((a, b) => a + b, 0);
    const rssAll = after.reduce((s, a, i) => s + a.rss - before[i]!.rss, 0);
    const kb = total > 0 ? rssAll / total / 1024 : NaN;
    ctx.progress(`scale: RSS/conn per worker ${perWorkerKB.map((x) => x.toFixed(2)).join(', ')} KB (all: ${kb.toFixed(2)} KB; heap ${heapKB.map((x) => x.toFixed(2)).join(', ')})`);
    // RSS growing less than the heap means the pages were committed before the first reading
    // (startup garbage, a grown young generation): the RSS delta then does not measure the
    // connections, and the target is not judged (docs/benchmarks.md, "Scale").
    const heapAll = after.reduce((t, x, i) => t + x.heapUsed + x.external - before[i]!.heapUsed - before[i]!.external, 0) / Math.max(1, total) / 1024;
    const plausible = kb >= heapAll;
    if (!plausible) ctx.progress(`scale: RSS grew less than the heap (${kb.toFixed(2)} < ${heapAll.toFixed(2)} KB/conn): too few connections per worker to measure RSS; target not judged`);
    rows.push({
      scenario: 'scale', target: `${label} memory`, value: kb, unit: 'KB/conn', cpu: {}, wall: 0,
      ratio: { to: `target ${SCALE_GOALS.kbPerConn} KB`, value: kb / SCALE_GOALS.kbPerConn, goal: 1, higherIsBetter: false, met: plausible ? kb <= SCALE_GOALS.kbPerConn : undefined },
      extra: { rssPlausible: plausible, heapPlusExternalKBPerConn: heapAll, connectionsPerWorker: counts, rssKBPerConnPerWorker: perWorkerKB, heapPlusExternalKBPerConnPerWorker: heapKB, rssBefore: before.map((b) => b.rss), rssAfter: after.map((a) => a.rss), gc: after.every((a) => a.gc) },
    });

    ctx.progress(`scale: one broadcast to all ${opened}`);
    await pool.all((i) => (i < agents ? { cmd: 'reset' } : undefined));
    const b = await measured({ server: () => dep.pids(), redis: () => redisPids, loadgen: () => pool.pids() }, async () => {
      // rate × duration = exactly one message, sent by a connection on the first worker.
      await pool.call<PublishResult>(agents, { cmd: 'publish', proto: 'herald', urls: [dep.wsBases[0]!], publishers: 1, channel: CHANNEL, rate: 1000, durationMs: 1, size: opts.size });
      return pool.all<CollectResult>((i) => (i < agents ? { cmd: 'await', expectedPerConn: 1, ms: BROADCAST_WAIT_MS } : undefined));
    });
    const hist = new Histogram();
    let received = 0;
    let dropped = 0;
    for (const g of b.result) {
      if (!g) continue;
      hist.merge(g.hist);
      received += g.received;
      dropped += g.dropped;
    }
    const p99 = hist.percentile(0.99) / 1000;
    ctx.progress(`scale: broadcast reached ${received}/${opened}, p50 ${(hist.percentile(0.5) / 1000).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`);
    rows.push({
      scenario: 'scale', target: `${label} broadcast`, value: received, unit: 'deliveries',
      p50: hist.percentile(0.5) / 1000, p99, p999: hist.percentile(0.999) / 1000, lost: opened - received,
      cost: received > 0 ? ((b.cpu.server ?? 0) * 1e6) / received : undefined,
      cpu: b.cpu, cpuPerProcess: b.perProcess, wall: b.wall, loadgenSaturated: b.loadgenSaturated, busyCores: b.busyCores,
      ratio: { to: `target p99 ${SCALE_GOALS.broadcastP99Ms} ms`, value: p99 / SCALE_GOALS.broadcastP99Ms, goal: 1, higherIsBetter: false, met: p99 <= SCALE_GOALS.broadcastP99Ms && received === opened },
      extra: { expected: opened, received, dropped, max: hist.max / 1000 },
    });
    await pool.all((i) => (i < agents ? { cmd: 'close' } : undefined));
  } finally {
    await pool.close();
    await dep.stop();
  }
}

/**
 * Fan-out (the `fanout` rate steps, `--subscribers` over `--workers`) on the single Redis and on
 * a 3-master Redis Cluster started by the bench, in the same run.
 */
async function clusterFanout(ctx: Context, rows: Row[], redisUrl: string, redisPids: number[]): Promise<void> {
  const { opts } = ctx;
  const label = `herald ×${opts.workers}`;
  const single = await startHerald(opts.workers, redisUrl);
  try {
    ctx.progress(`scale: fan-out on one Redis`);
    const r = await runFanoutTarget(ctx, `${label} fan-out, 1 Redis`, 'herald', single, redisPids);
    rows.push({ ...r, scenario: 'scale' });
  } finally {
    await single.stop();
  }
  const target = `${label} fan-out, Redis Cluster (3 masters)`;
  const why = heraldSupportsRedisCluster();
  if (why !== true) {
    ctx.progress(`scale: ${target}: SKIPPED: ${why}`);
    rows.push(skippedRow('scale', target, why));
    return;
  }
  const cluster = await RedisCluster.start();
  try {
    const dep = await startHerald(opts.workers, undefined, { HERALD_REDIS_CLUSTER: cluster.seeds.join(',') });
    try {
      ctx.progress(`scale: fan-out on a Redis Cluster`);
      const r = { ...(await runFanoutTarget(ctx, target, 'herald', dep, cluster.pids())), scenario: 'scale' };
      const one = rows.find((x) => x.target === `${label} fan-out, 1 Redis`);
      if (one) r.ratio = ratio(r.value, one.value, one.target, SCALE_GOALS.clusterRatio);
      rows.push(r);
    } finally {
      await dep.stop();
    }
  } catch (err) {
    if (!(err instanceof SkipError)) throw err;
    rows.push(skippedRow('scale', target, err.message));
  } finally {
    await cluster.stop();
  }
}
