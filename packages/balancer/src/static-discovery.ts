import type { DiscoveredWorker, Discovery } from './discovery.js';

/** The fixed `HERALD_WORKERS` list. */
export class StaticDiscovery implements Discovery {
  readonly name = 'static' as const;

  /** @param addresses - `host:port` entries */
  constructor(private readonly addresses: readonly string[]) {}

  async start(onUpdate: (workers: DiscoveredWorker[]) => void): Promise<void> {
    onUpdate(this.addresses.map((address) => ({ address })));
  }

  async stop(): Promise<void> {}
}
