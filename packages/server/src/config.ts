import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { NamespaceOptionsSchema, type NamespaceOptions } from './namespaces.js';
import { ConfigError } from './errors/config-error.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** Environment variables read by the worker, with their defaults. */
const EnvSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  NODE_ID: z.string().regex(/^[A-Za-z0-9_.\-]{1,64}$/, 'NODE_ID must be 1-64 characters of [A-Za-z0-9_.-]').optional(),
  REDIS_URL: z.string().url().optional(),
  HERALD_REDIS_PREFIX: z.string().min(1).default('herald:'),
  HERALD_ADVERTISE: z.string().regex(/^[^\s:]+:\d{1,5}$/, 'HERALD_ADVERTISE must be host:port').optional(),
  HERALD_LEASE_MS: int(1000).default(10_000),
  HERALD_REDIS_COMMAND_TIMEOUT_MS: int(100).default(2000),
  HERALD_REDIS_PROBE_MS: int(100).default(1000),
  HERALD_MAX_MESSAGE_BYTES: int(128, 256 * 1024 * 1024).default(65_536),
  HERALD_HEARTBEAT_MS: int(100).default(25_000),
  HERALD_DRAIN_MS: int(0).default(10_000),
  HERALD_SEND_BUFFER_BYTES: int(1024).default(1024 * 1024),
  HERALD_HANDSHAKE_TIMEOUT_MS: int(100).default(10_000),
  HERALD_MAX_CONNECTIONS: int(1).default(20_000),
  HERALD_CONFIG: z.string().min(1).optional(),
  HERALD_PER_MESSAGE_DEFLATE: bool.default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Contents of the `HERALD_CONFIG` JSON file. */
const FileSchema = z
  .object({
    /** Options per namespace; the key `""` (or `"default"`) overrides the default namespace. */
    namespaces: z.record(z.string(), NamespaceOptionsSchema).default({}),
  })
  .strict();

/** The validated configuration of a worker. */
export interface WorkerConfig {
  /** TCP port; 0 picks a free one. @default 8080 */
  port: number;
  /** Interface to bind. @default "0.0.0.0" */
  host: string;
  /** This worker's id in the cluster. @default "<hostname>-<pid>-<random>" */
  nodeId: string;
  /** Redis URL; unset runs on the embedded in-memory broker. */
  redisUrl?: string;
  /** Prefix of every Redis key and channel. @default "herald:" */
  redisPrefix: string;
  /** `host:port` announced to the cluster; derived from the bound address when unset. */
  advertise?: string;
  /** Lease of the worker's membership record and of its presence entries, in ms. @default 10000 */
  leaseMs: number;
  /** A Redis command (or liveness PING) without a reply after this long fails as `unavailable`, in ms. @default 2000 */
  redisCommandTimeoutMs: number;
  /** Interval of the Redis liveness probe (PING on both connections), in ms. @default 1000 */
  redisProbeMs: number;
  /** Largest accepted message, in bytes; a larger frame closes the connection with 1009. @default 65536 */
  maxMessageBytes: number;
  /** Interval of protocol pings; a peer that misses one pong is terminated. @default 25000 */
  heartbeatMs: number;
  /** Time the graceful shutdown may take, in ms. @default 10000 */
  drainMs: number;
  /** Per-connection send buffer (`bufferedAmount`) limit; above it the connection is closed with 4008. @default 1048576 */
  sendBufferBytes: number;
  /** Time a client has to complete the HTTP upgrade request (headers), in ms. @default 10000 */
  handshakeTimeoutMs: number;
  /** Open WebSocket connections this worker accepts; more are answered 503. @default 20000 */
  maxConnections: number;
  /** Whether permessage-deflate is offered. @default false */
  perMessageDeflate: boolean;
  /** Options per namespace (`""` is the default namespace). */
  namespaces: Record<string, Partial<NamespaceOptions>>;
  /** pino log level. @default "info" */
  logLevel: string;
}

function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/**
 * Reads and validates the worker configuration from environment variables.
 * @throws ConfigError naming every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = EnvSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) throw new ConfigError(`invalid environment: ${formatIssues(parsed.error)}`);
  const e = parsed.data;
  let namespaces: WorkerConfig['namespaces'] = {};
  if (e.HERALD_CONFIG) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(e.HERALD_CONFIG, 'utf8'));
    } catch (err) {
      throw new ConfigError(`HERALD_CONFIG ${e.HERALD_CONFIG}: ${(err as Error).message}`);
    }
    const file = FileSchema.safeParse(raw);
    if (!file.success) throw new ConfigError(`HERALD_CONFIG ${e.HERALD_CONFIG}: ${formatIssues(file.error)}`);
    namespaces = file.data.namespaces;
  }
  return {
    port: e.PORT,
    host: e.HOST,
    nodeId: e.NODE_ID ?? `${hostname().replace(/[^A-Za-z0-9_.\-]/g, '-').slice(0, 40)}-${process.pid}-${randomBytes(3).toString('hex')}`,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.HERALD_REDIS_PREFIX,
    advertise: e.HERALD_ADVERTISE,
    leaseMs: e.HERALD_LEASE_MS,
    redisCommandTimeoutMs: e.HERALD_REDIS_COMMAND_TIMEOUT_MS,
    redisProbeMs: e.HERALD_REDIS_PROBE_MS,
    maxMessageBytes: e.HERALD_MAX_MESSAGE_BYTES,
    heartbeatMs: e.HERALD_HEARTBEAT_MS,
    drainMs: e.HERALD_DRAIN_MS,
    sendBufferBytes: e.HERALD_SEND_BUFFER_BYTES,
    handshakeTimeoutMs: e.HERALD_HANDSHAKE_TIMEOUT_MS,
    maxConnections: e.HERALD_MAX_CONNECTIONS,
    perMessageDeflate: e.HERALD_PER_MESSAGE_DEFLATE,
    namespaces,
    logLevel: e.LOG_LEVEL,
  };
}
