import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench, parseOptions, compareFanout, formatTable, formatVerdict, ratio, FANOUT_GOAL, type BenchOptions, type Row } from '@herald/bench';

/** Tiny sizes: the point is that every scenario still runs end to end, not the numbers. */
function tiny(scenario: string, extra: Partial<BenchOptions> = {}): BenchOptions {
  return {
    ...parseOptions(['--quick']),
    // Tiny sizes, but every row (--quick alone leaves the explanatory proxy rows out).
    quick: false,
    scenarios: [scenario],
    agents: 1,
    durationMs: 300,
    warmupMs: 0,
    conns: 4,
    inflight: 2,
    subscribers: 20,
    workers: 2,
    publishers: 1,
    rates: [20, 40],
    stepMs: 300,
    // Loss is what must not happen here; latency on a shared CI machine is not the test's business.
    p99LimitMs: 60_000,
    idleConns: 50,
    rampPerSec: 0,
    proxyWorkers: 2,
    cpus: availableParallelism(),
    ...extra,
  };
}

const quiet = { write: false, log: () => undefined };

function row(rows: Row[], target: string): Row {
  const r = rows.find((x) => x.target.startsWith(target));
  expect(r, `row for ${target} in ${JSON.stringify(rows.map((x) => x.target))}`).to.not.equal(undefined);
  return r!;
}

describe('bench harness (ws, socket.io, herald workers, redis, nginx)', function () {
  this.timeout(60_000);

  it('echo: measures herald and the bare ws server and compares them', async () => {
    const { rows } = await runBench(tiny('echo'), quiet);
    expect(rows).to.have.length(2);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      expect(r.value).to.be.greaterThan(0);
      expect(r.lost).to.equal(0);
      expect(r.p99).to.be.greaterThan(0);
      expect(r.cpu.server).to.be.greaterThan(0);
      expect(r.cpu.loadgen).to.be.greaterThan(0);
    }
    expect(row(rows, 'herald').ratio?.to).to.equal('ws (bare)');
  });

  it('echo: binary frames come back too', async () => {
    const { rows } = await runBench(tiny('echo', { binary: true, size: 300 }), quiet);
    for (const r of rows) expect(r.lost, r.target).to.equal(0);
    expect(row(rows, 'herald').value).to.be.greaterThan(0);
  });

  it('fanout: every subscriber over 2 workers gets every message (ws + Redis, Socket.IO + redis-adapter, herald)', async () => {
    const { rows } = await runBench(tiny('fanout'), quiet);
    expect(rows).to.have.length(3);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      expect(r.value, `${r.target} best rate`).to.equal(40);
      const steps = r.extra!.steps as Array<{ expected: number; received: number }>;
      for (const s of steps) expect(s.received, r.target).to.equal(s.expected);
      expect(r.extra!.maxNoLossRate, r.target).to.equal(40);
      expect(r.cpu.redis).to.be.a('number');
    }
  });

  it('conns: holds idle subscribed connections and reports memory per connection', async () => {
    const { rows } = await runBench(tiny('conns'), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal(['ws (bare)', 'socket.io', 'herald']);
    for (const r of rows) {
      expect(r.extra!.opened, r.target).to.equal(50);
      expect(r.extra!.warmUp, `${r.target}: a tenth of N held open before the first reading`).to.equal(5);
      expect(r.extra!.gc, r.target).to.equal(true);
      expect(Number.isFinite(r.value), r.target).to.equal(true);
    }
  });

  it('proxy: the same echo directly, through nginx, a bare http-proxy and herald-balancer (native relay and js pipes)', async () => {
    const { rows } = await runBench(tiny('proxy'), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal(['direct', 'nginx', 'http-proxy (bare)', 'herald-balancer', 'herald-balancer (js)']);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      expect(r.value, r.target).to.be.greaterThan(0);
      expect(r.lost, r.target).to.equal(0);
    }
    expect(row(rows, 'nginx').cpu.proxy).to.be.greaterThan(0);
    expect(row(rows, 'herald-balancer').cpu.proxy).to.be.greaterThan(0);
    expect(row(rows, 'herald-balancer').ratio?.to).to.equal('nginx');
    expect(row(rows, 'herald-balancer (js)').ratio?.to).to.equal('nginx');
  });

  it('proxy --tls: the same echo over wss through nginx and herald-balancer (TLS ends there; both listen TLS-only)', async () => {
    expect(parseOptions(['--tls']).tls).to.equal(true);
    expect(parseOptions([]).tls).to.equal(false);
    const { rows } = await runBench(tiny('proxy', { tls: true, conns: 2 }), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal(['direct', 'nginx (tls)', 'herald-balancer (tls)']);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      expect(r.value, r.target).to.be.greaterThan(0);
      expect(r.lost, r.target).to.equal(0);
    }
    expect(row(rows, 'herald-balancer (tls)').cpu.proxy).to.be.greaterThan(0);
    expect(row(rows, 'herald-balancer (tls)').ratio?.to).to.equal('nginx (tls)');
    expect(row(rows, 'nginx (tls)').ratio?.to).to.equal('direct');
  });

  it('--quick shortens windows and rate steps but keeps the conns scenario at 10,000 connections', () => {
    const quick = parseOptions(['--quick']);
    const full = parseOptions([]);
    expect(quick.durationMs).to.be.lessThan(full.durationMs);
    expect(quick.stepMs).to.be.lessThan(full.stepMs);
    expect(quick.idleConns).to.equal(10_000);
    expect(full.idleConns).to.equal(10_000);
  });

  it('--quick leaves the explanatory rows (proxy: bare http-proxy and js; conns: Socket.IO) out unless --targets names them', async () => {
    const quick = { ...tiny('proxy'), quick: true };
    expect((await runBench({ ...quick, targets: ['nginx', 'herald-balancer'] }, quiet)).rows.map((r) => r.target)).to.deep.equal([
      'nginx',
      'herald-balancer',
      'herald-balancer (js)',
    ]);
    expect((await runBench(quick, quiet)).rows.map((r) => r.target)).to.deep.equal(['direct', 'nginx', 'herald-balancer']);
    const conns = { ...tiny('conns'), quick: true };
    expect((await runBench(conns, quiet)).rows.map((r) => r.target)).to.deep.equal(['ws (bare)', 'herald']);
    expect((await runBench({ ...conns, targets: ['socket.io'] }, quiet)).rows.map((r) => r.target)).to.deep.equal(['socket.io']);
  });

  it('fanout --plot: writes an SVG of p99 vs publish rate per target beside the JSON', async () => {
    const out = mkdtempSync(join(tmpdir(), 'herald-bench-plot-'));
    try {
      const { rows } = await runBench({ ...tiny('fanout'), plot: true, outDir: out }, { log: () => undefined });
      const files = readdirSync(out).sort();
      const json = files.find((f) => /^bench-.*\.json$/.test(f))!;
      expect(files).to.include.members(['latest.json', 'latest.svg', json.replace(/\.json$/, '.svg')]);
      const svg = readFileSync(join(out, 'latest.svg'), 'utf8');
      expect(svg).to.match(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      const series = [...svg.matchAll(/<g class="series" data-target="([^"]+)">\s*<polyline points="([^"]+)"/g)];
      expect(series.map((m) => m[1])).to.deep.equal(rows.map((r) => r.target));
      // One point per rate step (20 and 40 msg/s), rising along x.
      for (const [, target, points] of series) {
        const xs = points!.split(' ').map((p) => Number(p.split(',')[0]));
        expect(xs, target).to.have.lengthOf(2);
        expect(xs[1]!, target).to.be.greaterThan(xs[0]!);
      }
      expect(svg).to.include('class="limit"');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('scale: 600 idle connections over 6 workers from several source addresses; one broadcast reaches every one; fan-out on a Redis Cluster next to the single Redis', async function () {
    this.timeout(120_000);
    const { rows } = await runBench(tiny('scale', { scaleConns: 600, scaleWorkers: 6 }), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal([
      'herald ×6 ramp',
      'herald ×6 memory',
      'herald ×6 broadcast',
      'herald ×2 fan-out, 1 Redis',
      'herald ×2 fan-out, Redis Cluster (3 masters)',
    ]);
    const [ramp, memory, broadcast, single, cluster] = rows as [Row, Row, Row, Row, Row];
    expect(ramp.extra!.opened).to.equal(600);
    expect(ramp.lost).to.equal(0);
    expect(ramp.value).to.be.greaterThan(0);
    const perWorker = memory.extra!.connectionsPerWorker as number[];
    expect(perWorker).to.have.length(6);
    expect(perWorker.reduce((a, b) => a + b, 0)).to.equal(600);
    for (const c of perWorker) expect(c).to.equal(100);
    expect(memory.value).to.be.a('number').and.not.NaN;
    expect(broadcast.value, 'deliveries of the one broadcast').to.equal(600);
    expect(broadcast.lost).to.equal(0);
    expect(broadcast.p99).to.be.greaterThan(0);
    expect(single.skipped, single.skipped).to.equal(undefined);
    expect(single.value).to.equal(40);
    // herald-worker reads HERALD_REDIS_CLUSTER: the cluster row is measured, against the single Redis's.
    expect(cluster.skipped, cluster.skipped).to.equal(undefined);
    expect(cluster.value).to.equal(40);
    expect(cluster.ratio?.to).to.equal(single.target);
  });

  it('jitter: every cut subscriber gets every message again on Herald, Socket.IO CSR runs the same load', async function () {
    this.timeout(120_000);
    const { rows } = await runBench(tiny('jitter', { continuityClients: 4, rates: [20], durationMs: 3000, jitterPeriodMs: 1500, jitterCutMs: 500 }), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal(['herald', 'socket.io CSR']);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      // Each of the 4 subscribers was cut at least twice and messages were published meanwhile.
      expect(r.extra!.cuts as number, r.target).to.be.at.least(8);
      expect(r.extra!.replayed as number, r.target).to.be.greaterThan(0);
    }
    const herald = row(rows, 'herald');
    expect(herald.value).to.equal(100);
    expect(herald.lost).to.equal(0);
    expect(herald.extra!.duplicated).to.equal(0);
    expect(herald.p99).to.be.greaterThan(0);
    // From the end of the cut, not from the publish: each message published into a cut waited part
    // of it before the link came back, which the after-link figure leaves out.
    expect(herald.extra!.afterLinkP50Ms as number).to.be.at.least(0);
    expect(herald.extra!.afterLinkP50Ms as number).to.be.lessThan(herald.p50!);
  });

  it('deploy: workers one by one, then the balancer: Herald loses nothing, every close a 1001, reconnect rates measured; Socket.IO CSR measured beside it', async function () {
    this.timeout(180_000);
    const { rows } = await runBench(tiny('deploy', { continuityClients: 6, rates: [20] }), quiet);
    expect(rows.map((r) => r.target)).to.deep.equal(['herald', 'socket.io CSR']);
    for (const r of rows) {
      expect(r.skipped, r.skipped).to.equal(undefined);
      expect(r.extra!.acked as number, r.target).to.be.greaterThan(20);
      expect(r.extra!.steady, `${r.target} back to steady state`).to.equal(true);
    }
    const herald = row(rows, 'herald');
    expect(herald.lost).to.equal(0);
    expect(herald.extra!.duplicated).to.equal(0);
    expect(herald.extra!.closes as number).to.be.at.least(6);
    expect(herald.extra!.closesWithout1001).to.equal(0);
    // Measured, not judged here: with 6 subscribers no window could hold more than the bound;
    // test/deploy-rolling.test.ts asserts the pacing with 60.
    expect(herald.extra!.peakReconnectsPerSecPerWorker as number).to.be.greaterThan(0);
    // Each drain as its worker logged it: the first worker drains its share, and its clients
    // stay on the second, which then drains all 7 connections (6 subscribers and the publisher).
    const restarts = herald.extra!.workerRestarts as Array<{ drained: number; drainBatchRatePerSec: number }>;
    expect(restarts.map((r) => r.drainBatchRatePerSec)).to.deep.equal([20, 20]);
    expect(restarts[0]!.drained).to.be.within(1, 6);
    expect(restarts[1]!.drained).to.equal(7);
    expect((herald.extra!.balancerRestart as { drained: number }).drained, 'connections of the busiest worker').to.equal(7);
    expect(herald.extra!.paced).to.be.a('boolean');
    expect(row(rows, 'socket.io CSR').extra!.paced, 'Socket.IO has no drain to pace by').to.equal(undefined);
  });

  it('scale refuses more connections per worker than a process can hold', async () => {
    const { rows } = await runBench(tiny('scale', { scaleConns: 100_000, scaleWorkers: 2 }), quiet);
    expect(rows).to.have.length(1);
    expect(rows[0]!.skipped).to.match(/50000 per worker, above 19000/);
  });
});

describe('bench verdict (unit)', () => {
  const fanoutRow = (target: string, value: number, maxNoLossRate: number): Row => ({
    scenario: 'fanout', target, value, unit: 'pub/s', cpu: {}, wall: 1, extra: { maxNoLossRate, steps: [] },
  });

  it('judges the fan-out goal on the no-loss rate, and the table and the verdict line say the same', () => {
    // A busy machine: both miss the p99 limit early (50 vs 50 pub/s), the no-loss rates are 16× apart.
    const rows = [fanoutRow('ws (bare) ×2', 100, 400), fanoutRow('socket.io ×2', 50, 200), fanoutRow('herald ×2', 50, 3200)];
    compareFanout(rows);
    const herald = rows[2]!;
    expect(herald.ratio).to.include({ value: 16, goal: FANOUT_GOAL, met: true, basis: 'no-loss rate', to: 'socket.io ×2' });
    expect(herald.extra!.p99RateRatio).to.equal(1);
    const table = formatTable(rows, 2);
    expect(table).to.include('16.00× socket.io ×2 on no-loss rate (goal ≥3 met)');
    expect(table).to.not.include('NOT met');
    expect(formatVerdict(rows)).to.equal('verdict: 1 of 1 goals met — fanout herald ×2 16.00× socket.io ×2 on no-loss rate goal ≥3 met');
  });

  it('never prints NOT met beside a ratio that meets its goal (or met beside one that does not)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), fc.double({ min: 0.01, max: 100, noNaN: true }), fc.double({ min: 0.1, max: 10, noNaN: true }), fc.boolean(), (a, b, goal, higher) => {
        const r = ratio(a, b, 'base', goal, higher)!;
        const row: Row = { scenario: 'echo', target: 'herald', value: a, unit: 'msg/s', cpu: {}, wall: 1, ratio: r };
        const table = formatTable([row], 2);
        const shown = Number(table.match(/([\d.]+)× base/)![1]);
        const printedGoal = Number(table.match(/goal [≥≤]([\d.]+)/)![1]);
        // Read back from the text, as a person reads it.
        const meets = higher ? shown >= printedGoal : shown <= printedGoal;
        expect(table.includes('NOT met'), table).to.equal(!meets);
        expect(formatVerdict([row]).includes('NOT met')).to.equal(!meets);
      }),
    );
  });

  it('has no verdict line when no row has a goal', () => {
    expect(formatVerdict([fanoutRow('herald ×2', 50, 100)])).to.equal('');
  });
});
