import type { Broker } from './broker.js';
import type { Presence } from './presence.js';

/**
 * The broker (with its history) and presence a worker runs on, and the hook for what must wait
 * until the worker listens. Built by `createBackends` (backends.ts): the memory ones in-process,
 * the Redis ones by redis-backends.ts.
 */
export interface Backends {
  broker: Broker;
  presence: Presence;
  /** Called once the worker listens, with the bound port (membership announcement). */
  started(port: number): Promise<void>;
}
