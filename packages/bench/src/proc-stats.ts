import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`). @default 100 when getconf is missing */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * User + system CPU seconds a process has used so far, from `/proc/<pid>/stat`
 * (fields 14 and 15, utime and stime). 0 when the process is gone.
 */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** Resident set size of a process in bytes (`VmRSS` of `/proc/<pid>/status`); 0 when gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Direct children of a process (`/proc/<pid>/task/<pid>/children`), e.g. nginx's workers. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Samples CPU seconds of a set of processes between `start()` and `stop()`. */
export class CpuMeter {
  private readonly base = new Map<number, number>();
  private startedAt = 0;

  constructor(private readonly pids: () => number[]) {}

  /** Takes the starting sample. */
  start(): void {
    this.base.clear();
    for (const pid of this.pids()) this.base.set(pid, cpuSeconds(pid));
    this.startedAt = performance.now();
  }

  /** CPU seconds used since `start()` and the wall seconds elapsed. */
  read(): { cpu: number; wall: number } {
    let cpu = 0;
    for (const pid of this.pids()) cpu += cpuSeconds(pid) - (this.base.get(pid) ?? 0);
    return { cpu, wall: (performance.now() - this.startedAt) / 1000 };
  }
}
