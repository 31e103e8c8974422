/**
 * Milliseconds on CLOCK_MONOTONIC (`process.hrtime`), which every process on the machine
 * shares, so a timestamp written by a publisher process can be compared in a subscriber process.
 */
export function nowMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
