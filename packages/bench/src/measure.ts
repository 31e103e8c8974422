import { CpuMeter } from './proc-stats.js';

/** CPU use per role while `fn` ran, and whether a load agent was near a full core. */
export interface Measured<T> {
  result: T;
  cpu: Record<string, number>;
  wall: number;
  loadgenSaturated: boolean;
  /** Highest single-agent CPU share (0–1). */
  loadgenPeak: number;
  /** Cores busy on average with the measured processes together (CPU seconds / wall seconds). */
  busyCores: number;
  /** CPU seconds of each process, by role: `{ server: { "1234": 1.2, … }, … }`. */
  perProcess: Record<string, Record<string, number>>;
}

/** Share of a core above which a load agent counts as saturated. */
export const SATURATED = 0.9;

/**
 * Runs `fn` while sampling the CPU seconds of each role's processes (`/proc/<pid>/stat`).
 * The `loadgen` role is also checked agent by agent for saturation.
 */
export async function measured<T>(roles: Record<string, () => number[]>, fn: () => Promise<T>): Promise<Measured<T>> {
  const meters = Object.entries(roles).map(([role, pids]) => [role, new CpuMeter(pids)] as const);
  const each = Object.entries(roles).flatMap(([role, pids]) => pids().map((pid) => ({ role, pid, meter: new CpuMeter(() => [pid]) })));
  for (const e of each) e.meter.start();
  const agents = (roles.loadgen?.() ?? []).map((pid) => new CpuMeter(() => [pid]));
  for (const [, m] of meters) m.start();
  for (const m of agents) m.start();
  const result = await fn();
  const cpu: Record<string, number> = {};
  let wall = 0;
  for (const [role, m] of meters) {
    const r = m.read();
    cpu[role] = r.cpu;
    wall = r.wall;
  }
  const peak = Math.max(0, ...agents.map((m) => {
    const r = m.read();
    return r.wall > 0 ? r.cpu / r.wall : 0;
  }));
  const perProcess: Record<string, Record<string, number>> = {};
  for (const e of each) (perProcess[e.role] ??= {})[String(e.pid)] = Math.round(e.meter.read().cpu * 100) / 100;
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  return { result, cpu, wall, loadgenSaturated: peak >= SATURATED, loadgenPeak: peak, busyCores: wall > 0 ? total / wall : 0, perProcess };
}
