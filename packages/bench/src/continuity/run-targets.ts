import type { Context } from '../context.js';
import { selected } from '../options.js';
import type { Row } from '../result.js';
import { startRedis } from '../servers/launch.js';
import { SkipError } from '../skip-error.js';
import { heraldTarget, socketIoCsrTarget, type ContinuityTarget } from './subscribers.js';

/**
 * Runs a continuity scenario (`jitter`, `deploy`) for Herald and for Socket.IO with connection
 * state recovery, the selected ones, on one redis-server started for the scenario; a target that
 * cannot run here (SkipError) gets a skipped row with `unit`.
 */
export async function runContinuityTargets(ctx: Context, scenario: string, unit: string, run: (target: ContinuityTarget, redisUrl: string) => Promise<Row>): Promise<Row[]> {
  const rows: Row[] = [];
  const redis = await startRedis();
  try {
    for (const target of [heraldTarget, socketIoCsrTarget]) {
      if (!selected(ctx.opts, target.name)) continue;
      try {
        rows.push(await run(target, redis.url));
      } catch (err) {
        if (!(err instanceof SkipError)) throw err;
        rows.push({ scenario, target: target.name, value: 0, unit, cpu: {}, wall: 0, skipped: err.message });
      }
    }
  } finally {
    await redis.proc.stop();
  }
  return rows;
}
