import { randomBytes } from 'node:crypto';
import { startRedis, type TestRedis } from './redis.js';
import { startWorker, type WorkerProcess } from './worker.js';

/** A redis-server of its own and `n` worker processes on it, sharing a fresh key prefix. */
export interface TestCluster {
  /** The cluster's Redis; a test that restarts it assigns the new one here. */
  redis: TestRedis;
  workers: WorkerProcess[];
  prefix: string;
  /** Stops every worker still running (SIGKILL when `kill`), then Redis. */
  stop(kill?: boolean): Promise<void>;
}

/** Starts redis-server and `n` workers with `REDIS_URL`, a unique prefix and `env`. */
export async function startCluster(n: number, env: NodeJS.ProcessEnv = {}): Promise<TestCluster> {
  const redis = await startRedis();
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const workers: WorkerProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      workers.push(await startWorker({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, NODE_ID: `w${i}`, HERALD_DRAIN_MS: '1000', ...env }));
    }
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop();
    throw err;
  }
  const cluster: TestCluster = {
    redis,
    workers,
    prefix,
    stop: async (kill = false) => {
      await Promise.all(workers.map((w) => w.stop(kill ? 'SIGKILL' : 'SIGTERM')));
      // `redis` may have been replaced by a restarted one.
      await cluster.redis.stop();
    },
  };
  return cluster;
}
