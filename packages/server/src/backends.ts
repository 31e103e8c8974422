import type { Broker } from './broker.js';
import type { History } from './history.js';
import type { Presence } from './presence.js';
import type { WorkerConfig } from './config.js';
import type { Logger } from './logger.js';
import { MemoryBroker } from './memory-broker.js';
import { MemoryPresence } from './memory-presence.js';

/** The broker, presence and history a worker runs on, and how to stop their extras. */
export interface Backends {
  broker: Broker;
  presence: Presence;
  history: History;
  /** Called once the worker listens, with the bound port (membership announcement). */
  started(port: number): Promise<void>;
}

/** Builds the in-memory backends of a single worker (`REDIS_URL` unset). */
export async function createBackends(config: WorkerConfig, _log: Logger): Promise<Backends> {
  if (config.redisUrl) throw new Error('REDIS_URL is set but this build has no Redis broker');
  const broker = new MemoryBroker();
  return { broker, presence: new MemoryPresence(), history: broker.history, started: async () => undefined };
}
