import type { ServerProcess } from './server-process.js';

/** A set of server processes under test (workers of one kind), and where to reach them. */
export class Deployment {
  constructor(
    /** Label in the table, e.g. `herald ×2`. */
    readonly name: string,
    readonly procs: ServerProcess[],
    readonly ports: number[],
    /** Whether clients reach it over TLS (`wss://`, `https://`). @default false */
    readonly tls = false,
  ) {}

  /** `ws://127.0.0.1:<port>` (`wss://` with TLS) of each process. */
  get wsBases(): string[] {
    return this.ports.map((p) => `ws${this.tls ? 's' : ''}://127.0.0.1:${p}`);
  }

  /** `http://127.0.0.1:<port>` (`https://` with TLS) of each process. */
  get httpBases(): string[] {
    return this.ports.map((p) => `http${this.tls ? 's' : ''}://127.0.0.1:${p}`);
  }

  /** Every process id whose CPU counts for this deployment. */
  pids(): number[] {
    return this.procs.flatMap((p) => p.pids());
  }

  /** Stops every process. */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}
