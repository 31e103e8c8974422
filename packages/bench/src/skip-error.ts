import type { Context } from './context.js';
import { skippedRow, type Row } from './result.js';
import type { Deployment } from './servers/deployment.js';

/** A scenario (or one target of it) cannot run here; the message says why. Reported, not fatal. */
export class SkipError extends Error {
  override name = 'SkipError';
}

/**
 * Starts one target of a scenario. A {@link SkipError} (nginx missing, a package not built, …)
 * becomes a progress line and a skipped row in `rows` instead of failing the scenario; any other
 * error is thrown.
 *
 * @returns the deployment, or undefined when the target was skipped
 */
export async function startOrSkip(ctx: Context, scenario: string, name: string, rows: Row[], start: () => Promise<Deployment>): Promise<Deployment | undefined> {
  try {
    return await start();
  } catch (err) {
    if (!(err instanceof SkipError)) throw err;
    ctx.progress(`${scenario}: ${name}: SKIPPED: ${err.message}`);
    rows.push(skippedRow(scenario, name, err.message));
    return undefined;
  }
}
