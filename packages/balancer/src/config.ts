import { z } from 'zod';
import { ConfigError, SharedEnv, TlsEnv, TrustedProxies, envInt, parseEnv, redisTarget, redisTlsOptions, tlsFiles, type RedisClusterSeed, type RedisTarget, type TlsFiles } from '@herald/shared';
import { parseSticky, type StickySource } from './sticky-key.js';
import { parseWorkerAddress } from './worker-address.js';
import { isBalancerId } from '@herald/shared';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

/** The balancer's configuration, normally read from the environment by {@link loadConfig}. */
export interface BalancerConfig {
  /** Listening port (`PORT`; 0 = any free port). @default 8080 */
  readonly port: number;
  /** Listening address (`HOST`). @default '0.0.0.0' */
  readonly host: string;
  /** Static workers (`HERALD_WORKERS`, comma-separated `host:port`). @default [] */
  readonly workers: readonly string[];
  /** Redis to discover workers from (`REDIS_URL`); unset = static list only. @default undefined */
  readonly redisUrl: string | undefined;
  /** Redis Cluster seeds to discover workers from (`HERALD_REDIS_CLUSTER`), exclusive with `redisUrl`. @default undefined */
  readonly redisCluster: RedisClusterSeed[] | undefined;
  /** Hash-tag partitions of the cluster's names (`HERALD_REDIS_PARTITIONS`, as the workers'). @default 128 */
  readonly redisPartitions: number;
  /** Key prefix of the membership records (`HERALD_REDIS_PREFIX`). @default 'herald:' */
  readonly redisPrefix: string;
  /** How often the membership records are read (`HERALD_DISCOVERY_INTERVAL_MS`). @default 1000 */
  readonly discoveryIntervalMs: number;
  /** Sticky key source (`HERALD_STICKY`). @default query:sid */
  readonly sticky: StickySource;
  /** Peers whose X-Forwarded-For is believed (`HERALD_TRUSTED_PROXIES`, comma-separated). @default none */
  readonly trustedProxies: TrustedProxies;
  /** Active health check path (`HERALD_HEALTH_PATH`). @default '/readyz' */
  readonly healthPath: string;
  /** Interval between active checks (`HERALD_HEALTH_INTERVAL_MS`, at least 100). @default 1000 */
  readonly healthIntervalMs: number;
  /** Timeout of one check (`HERALD_HEALTH_TIMEOUT_MS`). @default 1000 */
  readonly healthTimeoutMs: number;
  /** Consecutive successes that make an unhealthy worker healthy (`HERALD_HEALTH_RISE`). @default 2 */
  readonly healthRise: number;
  /** Consecutive failures that make a healthy worker unhealthy (`HERALD_HEALTH_FALL`). @default 2 */
  readonly healthFall: number;
  /** Open WebSocket connections allowed per client address (`HERALD_MAX_CONNECTIONS_PER_IP`; 0 = no cap). @default 1000 */
  readonly maxConnectionsPerIp: number;
  /** Open WebSocket tunnels in total (`HERALD_MAX_CONNECTIONS`; each holds two file descriptors). @default 10000 */
  readonly maxConnections: number;
  /** Other workers tried after a connect error (`HERALD_RETRIES`). @default 2 */
  readonly retries: number;
  /** Time a worker has to answer an upgrade (`HERALD_HANDSHAKE_TIMEOUT_MS`). @default 10000 */
  readonly handshakeTimeoutMs: number;
  /** Time a worker has to answer a plain HTTP request (`HERALD_UPSTREAM_TIMEOUT_MS`). @default 30000 */
  readonly upstreamTimeoutMs: number;
  /**
   * An open tunnel through which no byte moved either way for this long is closed
   * (`HERALD_TUNNEL_IDLE_MS`; 0 = never), like nginx's `proxy_read_timeout`. Above the worker's
   * heartbeat (25 s), whose pings keep live connections busy, so only dead peers are dropped. @default 60000
   */
  readonly tunnelIdleMs: number;
  /**
   * Drain budget on SIGTERM (`HERALD_DRAIN_MS`). With Redis, the workers are asked to close this
   * balancer's connections with 1001 over the first half of it, and the balancer exits as soon as
   * its tunnels are gone (tunnels still open at the end are cut); without Redis, open tunnels are
   * cut in paced batches over it. @default 10000
   */
  readonly drainMs: number;
  /**
   * This instance's id (`HERALD_BALANCER_ID`): sent to workers as `X-Herald-Balancer` with every
   * upgrade, so they can drain exactly this instance's connections when it stops. Must be unique
   * among running balancers of a deployment. @default '<hostname>-<pid>-<random>'
   */
  readonly balancerId: string;
  /**
   * Data plane of open tunnels (`HERALD_RELAY`): `native` hands both sockets to the C relay
   * thread (build/Release/herald_relay.node; startup fails without it), `js` keeps them on
   * http-proxy's stream pipes, `auto` uses the native relay when it is built. @default 'auto'
   */
  readonly relay: 'auto' | 'native' | 'js';
  /**
   * Certificate and key (`HERALD_TLS_CERT`, `HERALD_TLS_KEY`, PEM paths; both or neither): the
   * balancer serves https/wss to clients and still talks plain HTTP to workers; SIGHUP reloads
   * them. TLS tunnels stay on the JS data plane (the native relay moves raw bytes only), so
   * `HERALD_RELAY=native` is refused with them. @default undefined (plain HTTP)
   */
  readonly tls: TlsFiles | undefined;
  /** ioredis TLS options for a `rediss://` `REDIS_URL` with `HERALD_REDIS_CA` (a private CA). @default {} */
  readonly redisTls: { tls?: { ca: Buffer } };
  /** pino level (`LOG_LEVEL`). @default 'info' */
  readonly logLevel: string;
  /** Log bytes held back while stdout takes nothing; more lines are dropped and counted (`HERALD_LOG_BACKLOG_BYTES`). @default 1048576 */
  readonly logBacklogBytes: number;
}

const int = (min: number, max: number, fallback: number) => envInt(min, max).default(fallback);

const schema = z
  .object({
    PORT: SharedEnv.PORT,
    HOST: SharedEnv.HOST,
    HERALD_WORKERS: z.string().default(''),
    REDIS_URL: SharedEnv.REDIS_URL,
    HERALD_REDIS_CLUSTER: SharedEnv.HERALD_REDIS_CLUSTER,
    HERALD_REDIS_PARTITIONS: SharedEnv.HERALD_REDIS_PARTITIONS,
    HERALD_REDIS_PREFIX: SharedEnv.HERALD_REDIS_PREFIX,
    HERALD_DISCOVERY_INTERVAL_MS: int(50, 3_600_000, 1000),
    HERALD_STICKY: z.string().default('query:sid'),
    HERALD_TRUSTED_PROXIES: SharedEnv.HERALD_TRUSTED_PROXIES,
    HERALD_HEALTH_PATH: z.string().startsWith('/').default('/readyz'),
    HERALD_HEALTH_INTERVAL_MS: int(100, 3_600_000, 1000),
    HERALD_HEALTH_TIMEOUT_MS: int(10, 600_000, 1000),
    HERALD_HEALTH_RISE: int(1, 100, 2),
    HERALD_HEALTH_FALL: int(1, 100, 2),
    HERALD_MAX_CONNECTIONS_PER_IP: SharedEnv.HERALD_MAX_CONNECTIONS_PER_IP.default(1000),
    HERALD_MAX_CONNECTIONS: SharedEnv.HERALD_MAX_CONNECTIONS.default(10_000),
    HERALD_RETRIES: int(0, 100, 2),
    HERALD_HANDSHAKE_TIMEOUT_MS: SharedEnv.HERALD_HANDSHAKE_TIMEOUT_MS,
    HERALD_UPSTREAM_TIMEOUT_MS: int(100, 3_600_000, 30_000),
    HERALD_DRAIN_MS: SharedEnv.HERALD_DRAIN_MS,
    HERALD_TUNNEL_IDLE_MS: int(0, 86_400_000, 60_000),
    HERALD_BALANCER_ID: z.string().refine(isBalancerId, 'expected 1-128 characters of A-Z a-z 0-9 _ . : @ -').optional(),
    HERALD_RELAY: z.enum(['auto', 'native', 'js']).default('auto'),
    HERALD_TLS_CERT: TlsEnv.HERALD_TLS_CERT,
    HERALD_TLS_KEY: TlsEnv.HERALD_TLS_KEY,
    HERALD_REDIS_CA: TlsEnv.HERALD_REDIS_CA,
    LOG_LEVEL: SharedEnv.LOG_LEVEL,
    HERALD_LOG_BACKLOG_BYTES: SharedEnv.HERALD_LOG_BACKLOG_BYTES,
  })
  .transform((env, ctx) => {
    const fail = (path: string, message: string) => {
      ctx.addIssue({ code: 'custom', path: [path], message });
      return z.NEVER;
    };
    const workers = env.HERALD_WORKERS.split(',')
      .map((w) => w.trim())
      .filter((w) => w !== '');
    for (const w of workers) {
      try {
        parseWorkerAddress(w);
      } catch (error) {
        return fail('HERALD_WORKERS', (error as Error).message);
      }
    }
    let redis: RedisTarget;
    try {
      redis = redisTarget(env);
    } catch (error) {
      return fail('REDIS_URL', (error as Error).message);
    }
    if (workers.length === 0 && redis.kind === 'none') {
      return fail('HERALD_WORKERS', 'set HERALD_WORKERS (host:port,…) or REDIS_URL / HERALD_REDIS_CLUSTER (worker discovery)');
    }
    let sticky: StickySource;
    try {
      sticky = parseSticky(env.HERALD_STICKY);
    } catch (error) {
      return fail('HERALD_STICKY', (error as Error).message);
    }
    let tls: TlsFiles | undefined;
    let redisTls: BalancerConfig['redisTls'];
    try {
      tls = tlsFiles(env.HERALD_TLS_CERT, env.HERALD_TLS_KEY);
    } catch (error) {
      return fail(env.HERALD_TLS_CERT === undefined ? 'HERALD_TLS_KEY' : 'HERALD_TLS_CERT', (error as ConfigError).message);
    }
    if (tls && env.HERALD_RELAY === 'native') {
      return fail('HERALD_RELAY', 'native cannot carry TLS tunnels (HERALD_TLS_CERT is set): use auto or js');
    }
    try {
      redisTls = redisTlsOptions(env.REDIS_URL, env.HERALD_REDIS_CA);
    } catch (error) {
      return fail('HERALD_REDIS_CA', (error as ConfigError).message);
    }
    // Validated by the shared rule already: constructing cannot throw here.
    const trustedProxies = new TrustedProxies(env.HERALD_TRUSTED_PROXIES);
    const config: BalancerConfig = {
      port: env.PORT,
      host: env.HOST,
      workers: [...new Set(workers)],
      redisUrl: redis.kind === 'single' ? redis.url : undefined,
      redisCluster: redis.kind === 'cluster' ? redis.seeds : undefined,
      redisPartitions: env.HERALD_REDIS_PARTITIONS,
      redisPrefix: env.HERALD_REDIS_PREFIX,
      discoveryIntervalMs: env.HERALD_DISCOVERY_INTERVAL_MS,
      sticky,
      trustedProxies,
      healthPath: env.HERALD_HEALTH_PATH,
      healthIntervalMs: env.HERALD_HEALTH_INTERVAL_MS,
      healthTimeoutMs: env.HERALD_HEALTH_TIMEOUT_MS,
      healthRise: env.HERALD_HEALTH_RISE,
      healthFall: env.HERALD_HEALTH_FALL,
      maxConnectionsPerIp: env.HERALD_MAX_CONNECTIONS_PER_IP,
      maxConnections: env.HERALD_MAX_CONNECTIONS,
      retries: env.HERALD_RETRIES,
      handshakeTimeoutMs: env.HERALD_HANDSHAKE_TIMEOUT_MS,
      upstreamTimeoutMs: env.HERALD_UPSTREAM_TIMEOUT_MS,
      drainMs: env.HERALD_DRAIN_MS,
      tunnelIdleMs: env.HERALD_TUNNEL_IDLE_MS,
      balancerId: env.HERALD_BALANCER_ID ?? defaultBalancerId(),
      relay: env.HERALD_RELAY,
      tls,
      redisTls,
      logLevel: env.LOG_LEVEL,
      logBacklogBytes: env.HERALD_LOG_BACKLOG_BYTES,
    };
    return config;
  });

/** `<hostname>-<pid>-<random>`: unique per process, and says where it runs in a worker's logs. */
function defaultBalancerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 64) || 'balancer';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * Reads and validates the balancer configuration. Empty variables count as unset (compose files
 * and pm2 ecosystems often pass `VAR=`).
 *
 * @param env - the environment to read
 * @default process.env
 * @returns the configuration
 * @throws ConfigError listing every invalid variable
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): BalancerConfig {
  return parseEnv(schema, env, 'invalid balancer configuration');
}
