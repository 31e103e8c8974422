import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/**
 * Namespaces of cluster tests: `nohist:` keeps no history (messages without offsets, delivered
 * locally at once), `quiet:` has no presence; every other channel uses the defaults.
 */
export const CLUSTER_NAMESPACES = { nohist: { historySize: 0 }, quiet: { presence: false } };

/** Starts redis-server and `n` workers with `REDIS_URL`, a unique prefix, {@link CLUSTER_NAMESPACES} and `env`. */
export async function startCluster(n: number, env: NodeJS.ProcessEnv = {}): Promise<TestCluster> {
  const redis = await startRedis();
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const dir = mkdtempSync(join(tmpdir(), 'herald-cluster-'));
  const config = join(dir, 'herald.json');
  writeFileSync(config, JSON.stringify({ namespaces: CLUSTER_NAMESPACES }));
  env = { HERALD_CONFIG: config, ...env };
  const workers: WorkerProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      workers.push(await startWorker({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix, NODE_ID: `w${i}`, HERALD_DRAIN_MS: '1000', ...env }));
    }
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
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
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
