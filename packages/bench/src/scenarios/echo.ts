import { AgentPool } from '../agent-pool.js';
import type { Context } from '../context.js';
import { selected } from '../options.js';
import { ratio, type Row } from '../result.js';
import { startHerald, startWsBaseline } from '../servers/launch.js';
import type { Deployment } from '../servers/deployment.js';
import { runEchoLoad } from './echo-run.js';

/** Target of issue 7: Herald `/echo` ≥ 0.95× the bare ws server's messages/s. */
export const ECHO_GOAL = 0.95;

/** `echo`: one Herald worker's `/echo` against one bare ws echo server, same load. */
export async function echoScenario(ctx: Context): Promise<Row[]> {
  const pool = new AgentPool(ctx.opts.agents);
  const rows: Row[] = [];
  try {
    const targets: Array<[string, () => Promise<Deployment>]> = [
      ['ws (bare)', () => startWsBaseline(1)],
      ['herald', () => startHerald(1)],
    ];
    for (const [name, start] of targets) {
      if (!selected(ctx.opts, name)) continue;
      const dep = await start();
      try {
        const base = dep.wsBases[0]!;
        rows.push(await runEchoLoad(ctx, pool, 'echo', name, () => `${base}/echo`, { server: () => dep.pids() }));
      } finally {
        await dep.stop();
      }
    }
  } finally {
    await pool.close();
  }
  const ws = rows.find((r) => r.target === 'ws (bare)');
  const herald = rows.find((r) => r.target === 'herald');
  if (ws && herald) herald.ratio = ratio(herald.value, ws.value, ws.target, ECHO_GOAL);
  return rows;
}
