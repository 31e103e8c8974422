import { AgentPool, split } from '../agent-pool.js';
import type { OpenResult, Proto } from '../agent/protocol.js';
import type { Context } from '../context.js';
import { quickSkips, selected } from '../options.js';
import { measured } from '../measure.js';
import { ratio, type Row } from '../result.js';
import type { Deployment } from '../servers/deployment.js';
import { startHerald, startSocketIo, startWsBaseline } from '../servers/launch.js';
import { startOrSkip } from '../skip-error.js';

/** Target of issue 7: Herald's RSS per idle subscribed connection ≤ 1.3× the bare ws server's. */
export const CONNS_GOAL = 1.3;
/** Connections one agent holds at most (a process may hold 20,000 files; keep a margin). */
export const CONNS_PER_AGENT = 15_000;

/**
 * Connections opened (and held) before the "before" measurement: a tenth of N, at most 1,000.
 * Without them the figure charged to the connections what the process grows into on its first
 * burst of allocations, whatever causes it — V8's young generation doubles (16 → 32 MB
 * committed) on the first ramp — so a server that happens to start smaller (fewer modules
 * loaded) read as more memory per connection. Measured after a warm-up, the figure is the
 * marginal cost of one more idle connection, which is what capacity planning needs.
 */
export function warmUpConns(n: number): number {
  return Math.min(1000, Math.ceil(n / 10));
}

/**
 * `conns`: opens a warm-up share of idle subscribed connections ({@link warmUpConns}) to one
 * process of each kind, forces a GC and measures; then opens N more at a ramp rate, holds them
 * all, forces a GC again and reports (RSS after − RSS before) / N.
 */
export async function connsScenario(ctx: Context): Promise<Row[]> {
  const { opts } = ctx;
  const n = opts.idleConns;
  const agents = Math.max(opts.agents, Math.ceil(n / CONNS_PER_AGENT));
  const rows: Row[] = [];
  const targets: Array<[string, Proto, () => Promise<Deployment>]> = [
    ['ws (bare)', 'ws', () => startWsBaseline(1)],
    ['socket.io', 'socketio', () => startSocketIo(1)],
    ['herald', 'herald', () => startHerald(1)],
  ];
  for (const [name, proto, start] of targets) {
    if (!selected(opts, name)) continue;
    // Socket.IO's memory is context, not the target (Herald vs bare ws): not in --quick.
    if (proto === 'socketio' && quickSkips(opts)) continue;
    const dep = await startOrSkip(ctx, 'conns', name, rows, start);
    if (!dep) continue;
    const pool = new AgentPool(agents);
    try {
      const server = dep.procs[0]!;
      const bases = proto === 'socketio' ? dep.httpBases : dep.wsBases;
      const open = (counts: number[]) =>
        pool.all<OpenResult>((i) =>
          counts[i]! > 0
            ? { cmd: 'open', proto, urls: bases, conns: counts[i]!, channel: 'bench:idle', rampPerSec: opts.rampPerSec / agents }
            : undefined,
        );
      const warm = warmUpConns(n);
      const warmed = await open(split(warm, agents));
      const warmFailed = warmed.reduce((s, r) => s + (r?.failed ?? 0), 0);
      if (warmFailed > 0) throw new Error(`conns: ${name}: ${warmFailed} of ${warm} warm-up connections failed: ${warmed.flatMap((r) => r?.errors ?? []).slice(0, 3).join('; ')}`);
      const before = await server.gcAndMeasure();
      ctx.progress(`conns: ${name}: ${warm} warm-up connections open; opening ${n} more idle subscribed connections at ${opts.rampPerSec || 'max'}/s`);
      const shares = split(n, agents);
      const m = await measured({ server: () => dep.pids(), loadgen: () => pool.pids() }, () => open(shares));
      const opened = m.result.reduce((s, r) => s + (r?.opened ?? 0), 0);
      const failed = m.result.reduce((s, r) => s + (r?.failed ?? 0), 0);
      const rampMs = Math.max(...m.result.map((r) => r?.ms ?? 0));
      const after = await server.gcAndMeasure();
      const perConn = opened > 0 ? (after.rss - before.rss) / opened : NaN;
      const heapPerConn = opened > 0 ? (after.heapUsed + after.external - before.heapUsed - before.external) / opened : NaN;
      rows.push({
        scenario: 'conns',
        target: name,
        value: perConn / 1024,
        unit: 'KB/conn',
        lost: failed,
        cpu: m.cpu,
        cpuPerProcess: m.perProcess,
        wall: m.wall,
        loadgenSaturated: m.loadgenSaturated,
        busyCores: m.busyCores,
        extra: {
          warmUp: warm,
          opened,
          failed,
          errors: m.result.flatMap((r) => r?.errors ?? []).slice(0, 5),
          rampMs,
          achievedRampPerSec: rampMs > 0 ? (opened * 1000) / rampMs : 0,
          heapPlusExternalKBPerConn: heapPerConn / 1024,
          rssBefore: before.rss,
          rssAfter: after.rss,
          gc: after.gc,
        },
      });
      ctx.progress(`conns: ${name}: ${opened} open (${failed} failed) in ${(rampMs / 1000).toFixed(1)} s, ${(perConn / 1024).toFixed(2)} KB RSS/conn, ${(heapPerConn / 1024).toFixed(2)} KB heap/conn`);
      await pool.all(() => ({ cmd: 'close' }));
    } finally {
      await pool.close();
      await dep.stop();
    }
  }
  const ws = rows.find((r) => r.target.startsWith('ws') && !r.skipped);
  for (const r of rows) {
    if (r === ws || r.skipped || !ws) continue;
    // Lower is better here.
    r.ratio = ratio(r.value, ws.value, ws.target, r.target === 'herald' ? CONNS_GOAL : undefined, false);
  }
  return rows;
}
