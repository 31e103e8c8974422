import type { Broker } from './broker.js';
import type { History } from './history.js';
import type { Presence } from './presence.js';
import type { WorkerConfig } from './config.js';
import type { Logger } from '@herald/shared';
import { MemoryBroker } from './memory-broker.js';
import { MemoryPresence } from './memory-presence.js';
import { createRedisBackends } from './redis-backends.js';

/** The broker, presence and history a worker runs on, and how to stop their extras. */
export interface Backends {
  broker: Broker;
  presence: Presence;
  history: History;
  /** Called once the worker listens, with the bound port (membership announcement). */
  started(port: number): Promise<void>;
}

/**
 * Builds the backends: Redis ones when `REDIS_URL` is set (see redis-backends.ts), otherwise
 * the in-memory ones of a single worker.
 */
export async function createBackends(config: WorkerConfig, log: Logger): Promise<Backends> {
  if (config.redisUrl) return createRedisBackends(config, log);
  const broker = new MemoryBroker();
  return { broker, presence: new MemoryPresence(), history: broker.history, started: async () => undefined };
}
