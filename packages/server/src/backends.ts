import type { WorkerConfig } from './config.js';
import type { Logger } from '@herald/shared';
import { MemoryBroker } from './memory-broker.js';
import { MemoryPresence } from './memory-presence.js';
import type { Backends } from './worker-backends.js';

/**
 * Builds the backends: Redis ones when `REDIS_URL` or `HERALD_REDIS_CLUSTER` is set (see redis-backends.ts), otherwise
 * the in-memory ones of a single worker. The Redis module is imported only then, so a
 * memory-only worker never loads `ioredis` (test/worker-process.test.ts checks it).
 */
export async function createBackends(config: WorkerConfig, log: Logger): Promise<Backends> {
  if (config.redisUrl || config.redisCluster) {
    const { createRedisBackends } = await import('./redis-backends.js');
    return createRedisBackends(config, log);
  }
  return { broker: new MemoryBroker(), presence: new MemoryPresence(), started: async () => undefined };
}
