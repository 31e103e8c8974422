import http from 'node:http';
import type { Logger } from '@herald/shared';
import type { Worker, WorkerPool } from './worker-pool.js';

/** Options of {@link HealthChecker}. */
export interface HealthCheckOptions {
  /** Path requested on every worker. @default '/readyz' */
  readonly path: string;
  /** Time between two rounds. @default 1000 */
  readonly intervalMs: number;
  /** Time one check may take before it counts as failed. @default 1000 */
  readonly timeoutMs: number;
}

/** Bodies longer than this are not read: a readiness answer is a few dozen bytes. */
const MAX_BODY = 4096;

/**
 * Active health checks: `GET /readyz` on every known worker each interval. 200 is a pass;
 * 503 with `{"reason":"draining"}` marks the worker draining at once; anything else (other
 * status, timeout, connection error) is a failure counted against the pool's `fall` threshold.
 */
export class HealthChecker {
  // A fresh connection per check, closed after the answer: a check then also proves the worker
  // still accepts connections (a kept-alive socket can outlive a wedged listener), and between
  // checks the balancer holds no socket to the worker, so its fd count has a clean baseline.
  private readonly agent = new http.Agent({ keepAlive: false });
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: HealthCheckOptions,
    private readonly logger: Logger,
  ) {}

  /** Starts the periodic rounds (the first one runs at once). */
  start(): void {
    this.stopped = false;
    const tick = () => {
      void this.round();
      this.timer = setTimeout(tick, this.options.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /** Stops the rounds and closes the kept-alive sockets. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.agent.destroy();
  }

  /**
   * Checks every known worker once.
   *
   * @returns when every check of this round has finished
   */
  async round(): Promise<void> {
    await Promise.all(this.pool.all().map((worker) => this.check(worker)));
  }

  /**
   * Checks one worker now (used as a passive hint, e.g. after it refused an upgrade with 503).
   * A check already in flight for that worker is not doubled: its promise is returned.
   *
   * @param worker - the worker
   * @returns when the check has finished (never rejects)
   */
  check(worker: Worker): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const running = this.inFlight.get(worker.address);
    if (running) return running;
    const check = this.runCheck(worker).finally(() => this.inFlight.delete(worker.address));
    this.inFlight.set(worker.address, check);
    return check;
  }

  private async runCheck(worker: Worker): Promise<void> {
    const outcome = await this.probe(worker);
    worker.lastCheck = Date.now();
    // The worker may have been forgotten while the check ran; results for it no longer matter.
    if (this.stopped || this.pool.get(worker.address) !== worker) return;
    if (outcome.ok) this.pool.recordSuccess(worker);
    else if (outcome.draining) this.pool.markDraining(worker, outcome.reason);
    else this.pool.recordFailure(worker, outcome.reason);
  }

  private probe(worker: Worker): Promise<{ ok: boolean; draining: boolean; reason: string }> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (ok: boolean, draining: boolean, reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ok, draining, reason });
      };
      const req = http.get(
        { host: worker.host, port: worker.port, path: this.options.path, agent: this.agent, headers: { accept: 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            if (size < MAX_BODY) chunks.push(chunk);
            size += chunk.length;
          });
          res.on('error', (error) => finish(false, false, `response error: ${error.message}`));
          res.on('end', () => {
            if (res.statusCode === 200) return finish(true, false, 'ok');
            let reason = `status ${res.statusCode}`;
            let draining = false;
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { reason?: unknown };
              if (typeof body.reason === 'string') {
                reason = `${reason}: ${body.reason}`;
                draining = body.reason === 'draining';
              }
            } catch {
              // Not JSON: the status alone is the reason.
            }
            finish(false, draining, reason);
          });
        },
      );
      const timer = setTimeout(() => {
        finish(false, false, `timeout after ${this.options.timeoutMs} ms`);
        req.destroy();
      }, this.options.timeoutMs);
      req.on('error', (error: NodeJS.ErrnoException) => {
        this.logger.debug({ worker: worker.address, err: error.message }, 'health check error');
        finish(false, false, error.code ?? error.message);
      });
    });
  }
}
