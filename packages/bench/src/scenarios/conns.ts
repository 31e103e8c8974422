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
 * `conns`: opens N idle subscribed connections to one process of each kind at a ramp rate,
 * holds them, forces a GC in the server and reports (RSS after − RSS before) / N.
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
      const before = await server.gcAndMeasure();
      ctx.progress(`conns: ${name}: opening ${n} idle subscribed connections at ${opts.rampPerSec || 'max'}/s`);
      const shares = split(n, agents);
      const bases = proto === 'socketio' ? dep.httpBases : dep.wsBases;
      const m = await measured({ server: () => dep.pids(), loadgen: () => pool.pids() }, () =>
        pool.all<OpenResult>((i) =>
          shares[i]! > 0
            ? { cmd: 'open', proto, urls: bases, conns: shares[i]!, channel: 'bench:idle', rampPerSec: opts.rampPerSec / agents }
            : undefined,
        ),
      );
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
