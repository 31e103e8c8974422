import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The worker's Prometheus metrics, in a registry of their own (served at `/metrics`). */
export class Metrics {
  readonly registry = new Registry();
  /** Open WebSocket connections by endpoint (`ws`, `echo`). */
  readonly connections = new Gauge({ name: 'herald_connections', help: 'Open WebSocket connections', labelNames: ['endpoint'] as const, registers: [this.registry] });
  /** Frames received from clients on /ws. */
  readonly framesIn = new Counter({ name: 'herald_frames_received_total', help: 'Frames received on /ws', registers: [this.registry] });
  /**
   * Channel and direct frames written to clients. Counted with {@link countFrameOut} and folded
   * into the counter when it is scraped: a fan-out counts hundreds of thousands of frames a
   * second, and prom-client's `inc()` allocates twice per call.
   */
  readonly framesOut: Counter = new Counter({
    name: 'herald_frames_sent_total',
    help: 'Frames sent on /ws',
    registers: [this.registry],
    collect: () => this.foldFramesOut(),
  });
  /** Frames written since the last fold into {@link framesOut}. */
  private framesOutPending = 0;
  /** Error frames sent, by code. */
  readonly errors = new Counter({ name: 'herald_errors_total', help: 'Error frames sent, by code', labelNames: ['code'] as const, registers: [this.registry] });
  /**
   * Client frames refused before their handling, by reason: `rate` (frame or byte rate),
   * `in_flight` (too many unanswered frames), `depth` (JSON nested deeper than the limit).
   */
  readonly framesRefused = new Counter({ name: 'herald_frames_refused_total', help: 'Client frames refused before handling, by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  /** Connections closed by the server, by close code. */
  readonly closes = new Counter({ name: 'herald_server_closes_total', help: 'Connections closed by the server, by close code', labelNames: ['code'] as const, registers: [this.registry] });
  /** Messages published, by origin (`ws`, `api`). */
  readonly publishes = new Counter({ name: 'herald_publishes_total', help: 'Messages published', labelNames: ['origin'] as const, registers: [this.registry] });
  /** 1 while the broker can reach the cluster. */
  readonly brokerUp = new Gauge({ name: 'herald_broker_up', help: '1 while the broker is available', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });
  }

  /** Counts one frame written to a client (see {@link framesOut}). */
  countFrameOut(): void {
    this.framesOutPending++;
  }

  private foldFramesOut(): void {
    if (this.framesOutPending === 0) return;
    this.framesOut.inc(this.framesOutPending);
    this.framesOutPending = 0;
  }
}
