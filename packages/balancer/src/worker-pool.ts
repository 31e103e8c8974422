import { parseWorkerAddress } from './worker-address.js';

/**
 * Health of one worker as the balancer sees it.
 * - `unknown`: just discovered, not checked yet — gets no traffic
 * - `healthy`: receives new connections
 * - `unhealthy`: failed `fall` checks in a row, or refused a connection — no new traffic until `rise` passes
 * - `draining`: answered `/readyz` with reason `draining` — no new traffic; its open connections stay
 */
export type WorkerState = 'unknown' | 'healthy' | 'unhealthy' | 'draining';

/** Where a worker came from. */
export type WorkerSource = 'static' | 'redis';

/** A worker known to the balancer. Mutable: the pool and the balancer update it in place. */
export interface Worker {
  /** `host:port`, also the identity hashed by the rendezvous function. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Sources that list it; the worker is forgotten when none does. */
  readonly sources: Set<WorkerSource>;
  /** Node id from the membership record, when discovered through Redis. */
  nodeId: string | undefined;
  state: WorkerState;
  /** Consecutive successful checks (counts towards `rise`). */
  successes: number;
  /** Consecutive failed checks (counts towards `fall`). */
  failures: number;
  /** Time of the last active check (ms since epoch), 0 before the first. */
  lastCheck: number;
  /** Why the worker last failed, `null` while healthy. */
  lastError: string | null;
  /** WebSocket tunnels open or opening to this worker. */
  connections: number;
  /** Plain HTTP requests in flight to this worker. */
  requests: number;
}

/** Thresholds for state changes. */
export interface HealthThresholds {
  /** Consecutive successes that make an unhealthy or draining worker healthy. @default 2 */
  readonly rise: number;
  /** Consecutive failures that make a healthy worker unhealthy. @default 2 */
  readonly fall: number;
}

/** A state change, reported to the pool's listener (the balancer logs it). */
export interface StateChange {
  readonly worker: Worker;
  readonly from: WorkerState;
  readonly to: WorkerState;
  readonly reason: string;
}

/**
 * The set of known workers and their health. Holds the state machine only; the
 * {@link HealthChecker} and the balancer feed it results.
 */
export class WorkerPool {
  private readonly workers = new Map<string, Worker>();

  /**
   * @param thresholds - rise/fall thresholds
   * @param onChange - called on every state change (never throws back into the pool)
   */
  constructor(
    private readonly thresholds: HealthThresholds,
    private readonly onChange: (change: StateChange) => void = () => {},
  ) {}

  /** All known workers, in address order. */
  all(): Worker[] {
    return [...this.workers.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** Workers that may receive new connections. */
  healthy(): Worker[] {
    return this.all().filter((w) => w.state === 'healthy');
  }

  /**
   * @param address - `host:port`
   * @returns the worker, if known
   */
  get(address: string): Worker | undefined {
    return this.workers.get(address);
  }

  /**
   * Replaces the list one source contributes. Workers no source lists any more are forgotten
   * (their open tunnels keep a reference and finish normally).
   *
   * @param source - the source reporting
   * @param entries - its current workers
   * @returns the workers added and removed by this call
   */
  sync(source: WorkerSource, entries: ReadonlyArray<{ address: string; nodeId?: string }>): { added: Worker[]; removed: Worker[] } {
    const added: Worker[] = [];
    const removed: Worker[] = [];
    const listed = new Set<string>();
    for (const entry of entries) {
      listed.add(entry.address);
      let worker = this.workers.get(entry.address);
      if (!worker) {
        const { host, port } = parseWorkerAddress(entry.address);
        worker = {
          address: entry.address,
          host,
          port,
          sources: new Set(),
          nodeId: undefined,
          state: 'unknown',
          successes: 0,
          failures: 0,
          lastCheck: 0,
          lastError: null,
          connections: 0,
          requests: 0,
        };
        this.workers.set(entry.address, worker);
        added.push(worker);
      }
      worker.sources.add(source);
      if (entry.nodeId !== undefined) worker.nodeId = entry.nodeId;
    }
    for (const worker of this.workers.values()) {
      if (!worker.sources.has(source) || listed.has(worker.address)) continue;
      worker.sources.delete(source);
      if (worker.sources.size === 0) {
        this.workers.delete(worker.address);
        removed.push(worker);
      }
    }
    return { added, removed };
  }

  /**
   * Records a passed check (`/readyz` answered 200).
   *
   * @param worker - the worker checked
   */
  recordSuccess(worker: Worker): void {
    worker.failures = 0;
    worker.successes += 1;
    // A freshly announced worker has just told Redis (or the operator) it listens: one pass is
    // enough. A worker that failed must prove itself `rise` times, so a flapping one stays out.
    if (worker.state === 'unknown' || (worker.state !== 'healthy' && worker.successes >= this.thresholds.rise)) {
      this.transition(worker, 'healthy', 'check passed');
    }
    if (worker.state === 'healthy') worker.lastError = null;
  }

  /**
   * Records a failed check.
   *
   * @param worker - the worker checked
   * @param reason - what failed (status code, error code)
   */
  recordFailure(worker: Worker, reason: string): void {
    worker.successes = 0;
    worker.failures += 1;
    worker.lastError = reason;
    if (worker.state === 'unknown' || worker.state === 'draining') {
      this.transition(worker, 'unhealthy', reason);
    } else if (worker.state === 'healthy' && worker.failures >= this.thresholds.fall) {
      this.transition(worker, 'unhealthy', reason);
    }
  }

  /**
   * The worker said it is draining: no new traffic from now on, whatever the thresholds.
   *
   * @param worker - the worker
   * @param reason - the reason it gave
   */
  markDraining(worker: Worker, reason: string): void {
    worker.successes = 0;
    worker.lastError = reason;
    this.transition(worker, 'draining', reason);
  }

  /**
   * Passive marking: a connection to the worker could not be opened, so it is taken out at once
   * rather than after `fall` active checks.
   *
   * @param worker - the worker
   * @param reason - the error code
   */
  markDown(worker: Worker, reason: string): void {
    worker.successes = 0;
    worker.failures = Math.max(worker.failures, this.thresholds.fall);
    worker.lastError = reason;
    this.transition(worker, 'unhealthy', reason);
  }

  private transition(worker: Worker, to: WorkerState, reason: string): void {
    const from = worker.state;
    if (from === to) return;
    worker.state = to;
    if (to === 'healthy') worker.successes = 0;
    try {
      this.onChange({ worker, from, to, reason });
    } catch {
      // A logging failure must not corrupt the pool's state.
    }
  }
}
