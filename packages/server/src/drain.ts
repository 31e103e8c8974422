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
 * Closes `targets` in equal batches spread over `spreadMs`, so the clients of a drained
 * worker reconnect elsewhere gradually instead of all at once (no reconnect storm).
 */
export async function closeInBatches(targets: Closable[], opts: BatchOptions): Promise<void> {
  if (targets.length === 0) return;
  const interval = opts.intervalMs ?? 50;
  const batches = Math.max(1, Math.floor(opts.spreadMs / interval));
  const size = Math.ceil(targets.length / batches);
  for (let i = 0; i < targets.length; i += size) {
    for (const t of targets.slice(i, i + size)) t.close(opts.code, opts.reason);
    if (i + size < targets.length) await delay(interval);
  }
}
