/** One line of the final table (and one entry of the JSON file). */
export interface Row {
  scenario: string;
  target: string;
  /** The headline number of the scenario. */
  value: number;
  /** Unit of `value`, e.g. `msg/s`, `pub/s`, `KB/conn`. */
  unit: string;
  /** Latency percentiles in ms (when the scenario measures latency). */
  p50?: number;
  p99?: number;
  p999?: number;
  /**
   * CPU µs the processes under test (server and proxy; not Redis, not the load generator)
   * spent per message delivered — steadier than throughput on a shared machine.
   */
  cost?: number;
  /** Messages lost or not delivered within the drain wait. */
  lost?: number;
  /** CPU seconds per role during the measurement: server, proxy, redis, loadgen. */
  cpu: Record<string, number>;
  /** CPU seconds of each process by role and pid (nginx's workers are counted with their master). */
  cpuPerProcess?: Record<string, Record<string, number>>;
  /** Wall seconds the CPU figures cover. */
  wall: number;
  /** Set when a load agent used ≥ 90 % of a core: the load generator may be the limit. */
  loadgenSaturated?: boolean;
  /** Cores the measured processes kept busy together; near the machine's CPU count = machine-bound. */
  busyCores?: number;
  /** This row's value divided by a baseline's, with the target when there is one. */
  ratio?: Ratio;
  /** Why the row has no numbers. */
  skipped?: string;
  /** Scenario-specific details (kept in the JSON file). */
  extra?: Record<string, unknown>;
}

/** A comparison with a baseline row. */
export interface Ratio {
  /** Target of the baseline row. */
  to: string;
  value: number;
  /** The target (`≥` when `higherIsBetter`, else `≤`). */
  goal?: number;
  higherIsBetter?: boolean;
  /** Whether `value` meets `goal`: always computed from this `value`, so the two cannot disagree. */
  met?: boolean;
  /** What was compared when it is not the row's headline result (fanout: `no-loss rate`). */
  basis?: string;
}

/** Builds a ratio `a / b` and checks it against `goal`. */
export function ratio(a: number, b: number, to: string, goal?: number, higherIsBetter = true, basis?: string): Ratio | undefined {
  if (!(b > 0) || !Number.isFinite(a)) return undefined;
  const value = a / b;
  // Judged on the value as printed (two decimals), so "1.00× (goal ≥1 NOT met)" cannot appear.
  const shown = Math.round(value * 100) / 100;
  const met = goal === undefined ? undefined : higherIsBetter ? shown >= goal : shown <= goal;
  return { to, value, goal, higherIsBetter, met, ...(basis ? { basis } : {}) };
}

/** A row for a target that could not run. */
export function skippedRow(scenario: string, target: string, why: string): Row {
  return { scenario, target, value: NaN, unit: '', cpu: {}, wall: 0, skipped: why };
}
