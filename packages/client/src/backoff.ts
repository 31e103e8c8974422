/**
 * Reconnect delay for the `attempt`-th retry in a row (0 = first retry), in ms.
 *
 * Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay is drawn
 * uniformly from the whole window `[min, cap]`, with `cap = min(max, min * 2^(attempt + 1))`.
 * Drawing from the whole window spreads the clients of a drained or crashed worker over
 * time, so they do not all hit the balancer in the same instant; the window starts at
 * `min` (not 0) so a flapping link never reconnects in a tight loop.
 *
 * Pure: the only input besides the arguments is `random` (default `Math.random`), which tests
 * can replace. Always returns an integer in `[min, max]` (when `min <= max`).
 */
export function backoff(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const lo = Math.max(0, min);
  const hi = Math.max(lo, max);
  const step = Math.max(0, Math.floor(attempt));
  // 2^31 is far beyond any sane max; clamping the exponent avoids Infinity for huge attempts.
  const cap = Math.min(hi, lo * 2 ** Math.min(step + 1, 31));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(lo + r * (Math.max(cap, lo) - lo));
}
