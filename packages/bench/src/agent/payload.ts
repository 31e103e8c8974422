import { nowMs } from '../clock.js';

/**
 * A fan-out payload of exactly `size` ASCII bytes (at least the timestamp): the send time
 * in ms on the shared monotonic clock, a `|`, then padding. Receivers `parseFloat` it.
 */
export function stampedPayload(size: number): string {
  const stamp = nowMs().toFixed(3);
  return size > stamp.length + 1 ? `${stamp}|${'x'.repeat(size - stamp.length - 1)}` : stamp;
}

/** Send time carried by a payload at `from` in `text`, or NaN. */
export function stampOf(text: string, from = 0): number {
  return parseFloat(from === 0 ? text : text.slice(from, from + 24));
}
