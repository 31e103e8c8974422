import { z } from 'zod';
import { ConfigError } from './errors/config-error.js';
import { TrustedProxies } from './client-address.js';
import { parseClusterSeed, type RedisClusterSeed } from './redis-partition.js';
import { DEFAULT_LOG_BACKLOG_BYTES } from './stdout-destination.js';

/**
 * An integer variable within `[min, max]` (decimal; `1.5`, `x` and out-of-range values fail).
 *
 * @param min - smallest accepted value
 * @param max - largest accepted value. @default Number.MAX_SAFE_INTEGER
 */
export const envInt = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/**
 * A duration in milliseconds within `[min, max]`; the same rule as {@link envInt}, named for intent.
 *
 * @param min - shortest accepted duration, ms
 * @param max - longest accepted duration, ms. @default 3600000 (one hour)
 */
export const envMs = (min: number, max = 3_600_000) => envInt(min, max);

/** A boolean variable: `true`/`false`/`1`/`0`. */
export const envBool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** A comma-separated list; entries are trimmed and empty ones dropped. */
export const envList = z.string().transform((v) => v.split(',').map((x) => x.trim()).filter((x) => x.length > 0));

/**
 * One rule per variable name that both the worker and the balancer read, so a value means the
 * same in both (docs: README "Configuration"). A bin adds `.default(…)` where its default
 * differs (`HERALD_MAX_CONNECTIONS`, `HERALD_MAX_CONNECTIONS_PER_IP`).
 */
export const SharedEnv = {
  /** Listening port; 0 picks a free one. @default 8080 */
  PORT: envInt(0, 65535).default(8080),
  /** Listening address. @default "0.0.0.0" */
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Redis URL, `redis://` or `rediss://` (TLS) only; unset = no Redis. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/[^\s]*$/, 'expected a redis:// or rediss:// URL')
    .refine((v) => URL.canParse(v), 'not a valid URL')
    .optional(),
  /**
   * Seed nodes of a Redis Cluster, `host:port,host:port,…`; exclusive with `REDIS_URL` (check
   * both with {@link redisTarget}). Unset = no cluster. docs/cluster.md.
   */
  HERALD_REDIS_CLUSTER: envList
    .transform((entries, ctx) => {
      const seeds: RedisClusterSeed[] = [];
      for (const entry of entries) {
        try {
          seeds.push(parseClusterSeed(entry));
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
          return z.NEVER;
        }
      }
      if (seeds.length === 0) ctx.addIssue({ code: 'custom', message: 'expected host:port,host:port,…' });
      return seeds;
    })
    .optional(),
  /**
   * Hash-tag partitions of keys and channels on a Redis Cluster (every node of a deployment must
   * use the same number; changing it moves every channel). @default 128
   */
  HERALD_REDIS_PARTITIONS: envInt(1, 16_384).default(128),
  /** Prefix of every Redis key and channel (on a cluster without `{` or `}`, which would move the hash tag). @default "herald:" */
  HERALD_REDIS_PREFIX: z.string().min(1).default('herald:'),
  /** Peers whose `X-Forwarded-For` is believed: addresses, CIDRs, `loopback`, `private`. @default [] */
  HERALD_TRUSTED_PROXIES: envList
    .superRefine((entries, ctx) => {
      try {
        new TrustedProxies(entries);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .default([]),
  /** Time a graceful shutdown may take (SIGTERM), ms. @default 10000 */
  HERALD_DRAIN_MS: envMs(0).default(10_000),
  /** Time a client (or a worker, at the balancer) has to complete an upgrade, ms. @default 10000 */
  HERALD_HANDSHAKE_TIMEOUT_MS: envMs(100, 600_000).default(10_000),
  /** Open WebSocket connections the process accepts in total (no default here: each bin has its own). */
  HERALD_MAX_CONNECTIONS: envInt(1, 10_000_000),
  /** Open WebSocket connections per client address; 0 = no cap (no default here: each bin has its own). */
  HERALD_MAX_CONNECTIONS_PER_IP: envInt(0, 10_000_000),
  /**
   * Bytes of log output held back while stdout takes nothing; lines beyond are dropped and
   * counted (a warning with the count follows once stdout takes lines again). At least 16 KiB:
   * a single line longer than this is always dropped (and counted), however idle stdout is. @default 1048576
   */
  HERALD_LOG_BACKLOG_BYTES: envInt(16 * 1024, 1024 * 1024 * 1024).default(DEFAULT_LOG_BACKLOG_BYTES),
  /** pino log level. @default "info" */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
} as const;

/** Where a process finds Redis: one instance, a cluster, or none. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; seeds: RedisClusterSeed[]; partitions: number }
  | { kind: 'none' };

/**
 * The one rule for `REDIS_URL` vs `HERALD_REDIS_CLUSTER` (worker and balancer alike): at most one
 * of them. Call it on values parsed with {@link SharedEnv}.
 *
 * @throws ConfigError naming both variables when both are set, or when a cluster's
 *   `HERALD_REDIS_PREFIX` has a brace (it would take the place of the partition hash tag)
 */
export function redisTarget(env: { REDIS_URL?: string; HERALD_REDIS_CLUSTER?: RedisClusterSeed[]; HERALD_REDIS_PARTITIONS: number; HERALD_REDIS_PREFIX?: string }): RedisTarget {
  if (env.REDIS_URL !== undefined && env.HERALD_REDIS_CLUSTER !== undefined) {
    throw new ConfigError('REDIS_URL and HERALD_REDIS_CLUSTER are both set: use REDIS_URL for one Redis, HERALD_REDIS_CLUSTER for a Redis Cluster, not both');
  }
  if (env.HERALD_REDIS_CLUSTER !== undefined && /[{}]/.test(env.HERALD_REDIS_PREFIX ?? '')) {
    throw new ConfigError('HERALD_REDIS_PREFIX must not contain { or } with HERALD_REDIS_CLUSTER (the partition hash tag follows the prefix)');
  }
  if (env.REDIS_URL !== undefined) return { kind: 'single', url: env.REDIS_URL };
  if (env.HERALD_REDIS_CLUSTER !== undefined) return { kind: 'cluster', seeds: env.HERALD_REDIS_CLUSTER, partitions: env.HERALD_REDIS_PARTITIONS };
  return { kind: 'none' };
}

/**
 * Validates `env` with `schema`. Empty variables count as unset (compose files and pm2 ecosystems
 * often pass `VAR=`).
 *
 * @param schema - a zod schema of the variables
 * @param env - the environment. @default process.env
 * @param title - first words of the error message. @default "invalid environment"
 * @returns the parsed values
 * @throws ConfigError naming every invalid variable at once: `<title>: VAR: why; VAR2: why`
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env, title = 'invalid environment'): z.output<S> {
  const present: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') present[key] = value;
  const result = schema.safeParse(present);
  if (result.success) return result.data;
  throw new ConfigError(`${title}: ${formatIssues(result.error)}`);
}

/**
 * @param error - a zod error
 * @returns its issues as `path: message`, joined by `; `
 */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
