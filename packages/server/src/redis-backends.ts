import type { Backends } from './worker-backends.js';
import type { WorkerConfig } from './config.js';
import { RedisKeys, checkRedisCredentials, type Logger } from '@herald/shared';
import { RedisBroker } from './redis-broker.js';
import { createRedisClients, type RedisClientOptions, type RedisClients } from './redis-client.js';
import { createRedisClusterClients } from './redis-cluster-client.js';
import { RedisMembership } from './redis-membership.js';
import { RedisPresence } from './redis-presence.js';

/** The `host:port` a worker announces: `HERALD_ADVERTISE`, else derived from the bound address. */
export function advertisedAddress(config: Pick<WorkerConfig, 'advertise' | 'host'>, port: number): string {
  if (config.advertise) return config.advertise;
  const wildcard = config.host === '0.0.0.0' || config.host === '::' || config.host === '';
  return `${wildcard ? '127.0.0.1' : config.host}:${port}`;
}

/** The worker's Redis clients: one Redis (`REDIS_URL`) or a Redis Cluster (`HERALD_REDIS_CLUSTER`). */
function connect(config: WorkerConfig, log: Logger): RedisClients {
  const options: RedisClientOptions = { commandTimeoutMs: config.redisCommandTimeoutMs, name: `herald:${config.nodeId}`, ...config.redisTls };
  return config.redisCluster ? createRedisClusterClients(config.redisCluster, options, log) : createRedisClients(config.redisUrl!, options, log);
}

/**
 * The Redis backends of a cluster worker (`REDIS_URL` or `HERALD_REDIS_CLUSTER` set; on a Redis
 * Cluster names are hash-tagged by partition and pub/sub is sharded, docs/cluster.md): one command connection shared by
 * broker (with its history), presence and membership, and its `duplicate()` for subscriptions. The
 * broker owns both connections and quits them on close; presence closes first (removing this
 * node's entries and membership records) — the worker closes presence before the broker.
 */
export async function createRedisBackends(config: WorkerConfig, log: Logger): Promise<Backends> {
  const clients = connect(config, log);
  const prefix = config.redisPrefix;
  const partitions = config.redisCluster ? config.redisPartitions : undefined;
  // A wrong password is fatal at start-up (RedisAuthError); a Redis that is down is not.
  // Bounded like the broker's own start-up wait (3 s), so a black-holed Redis delays the start by at most that much more.
  // The probe runs what every Herald command is, a script on a key of the prefix (on a cluster: the tagged one).
  const probe = () => clients.publisher.eval("return redis.call('exists', KEYS[1])", 1, new RedisKeys(prefix, partitions).nodes);
  const where = config.redisUrl ?? `redis://${config.redisCluster![0]!.host}:${config.redisCluster![0]!.port}`;
  await checkRedisCredentials(clients.publisher, where, 3000, probe).catch((err: unknown) => {
    clients.publisher.disconnect();
    clients.subscriber.disconnect();
    throw err;
  });
  const broker = new RedisBroker(clients, {
    nodeId: config.nodeId,
    prefix,
    partitions,
    probeIntervalMs: config.redisProbeMs,
    probeTimeoutMs: config.redisCommandTimeoutMs,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    log,
  });
  let presence: RedisPresence | undefined;
  const membership = new RedisMembership(clients.publisher, {
    nodeId: config.nodeId,
    prefix,
    partitions,
    leaseMs: config.leaseMs,
    log,
    onLeaseLost: () => void presence?.restore(),
  });
  presence = new RedisPresence(clients.publisher, {
    membership,
    prefix,
    partitions,
    log,
    announce: (event) => broker.publish(event),
  });
  membership.start();
  presence.start();
  return {
    broker,
    presence,
    started: (port) => membership.setAddress(advertisedAddress(config, port)).catch((err: Error) => {
      // Redis is down at this moment: the record is written by the next refresh.
      log.warn({ err: err.message }, 'membership announcement failed; retrying');
    }),
  };
}
