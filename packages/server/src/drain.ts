import { setTimeout as delay } from 'node:timers/promises';

/** Anything that can be closed with a code. */
export interface Closable {
  close(code: number, reason: string): void;
}

/** Pacing of a drain. */
export interface BatchOptions {
  code: number;
  reason: string;
  /** Time over which the closes are spread, in ms. */
  spreadMs: number;
  /** Pause between two batches, in ms. @default 50 */
  intervalMs?: number;
}

/**
 * Closes `targets` in batches every `intervalMs`, spread over `spreadMs`, so the clients of a
 * drained worker reconnect elsewhere gradually instead of all at once (no reconnect storm).
 * There are `min(targets, spreadMs / intervalMs)` batches, whose sizes differ by at most one
 * (the larger ones spread among the smaller ones), so no batch holds more than
 * `ceil(targets / batches)` and the closes take the whole spread when there are more targets
 * than batches. Equal batches of `ceil(targets / batches)` would not: 21 targets in batches of 2
 * are done in 11 batches, half the spread, at twice the rate the spread allows.
 */
export async function closeInBatches(targets: Closable[], opts: BatchOptions): Promise<void> {
  const n = targets.length;
  if (n === 0) return;
  const interval = opts.intervalMs ?? 50;
  const batches = Math.min(n, Math.max(1, Math.floor(opts.spreadMs / interval)));
  for (let k = 0; k < batches; k++) {
    for (const t of targets.slice(Math.floor((k * n) / batches), Math.floor(((k + 1) * n) / batches))) t.close(opts.code, opts.reason);
    if (k + 1 < batches) await delay(interval);
  }
}
