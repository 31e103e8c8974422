import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { NamespaceOptionsSchema, type NamespaceOptions } from './namespaces.js';
import { ConfigError, SharedEnv, TlsEnv, envBool, envInt, envList, formatIssues, parseEnv, redisTarget, redisTlsOptions, tlsFiles, type RedisClusterSeed, type TlsFiles } from '@herald/shared';
import { DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit.js';
import { DEFAULT_MAX_FRAMES_IN_FLIGHT } from './session.js';
import { DEFAULT_MAX_JSON_DEPTH } from '@herald/protocol';
import { DEFAULT_WRITE_BATCH, type WriteBatchOptions } from './write-coalescer.js';
import type { AuthMode } from './auth.js';
import { normalizeOrigin } from './origin.js';
import { DEFAULT_HTTP_FALLBACK } from './http-fallback.js';


/** Environment variables read by the worker, with their defaults. */
/** Longest write-batch window either variable may set, and the derived busy window's cap, ms. */
const MAX_WRITE_WINDOW_MS = 100;

const EnvSchema = z.object({
  PORT: SharedEnv.PORT,
  HOST: SharedEnv.HOST,
  NODE_ID: z.string().regex(/^[A-Za-z0-9_.\-]{1,64}$/, 'NODE_ID must be 1-64 characters of [A-Za-z0-9_.-]').optional(),
  REDIS_URL: SharedEnv.REDIS_URL,
  HERALD_REDIS_CLUSTER: SharedEnv.HERALD_REDIS_CLUSTER,
  HERALD_REDIS_PARTITIONS: SharedEnv.HERALD_REDIS_PARTITIONS,
  HERALD_REDIS_PREFIX: SharedEnv.HERALD_REDIS_PREFIX,
  HERALD_ADVERTISE: z.string().regex(/^[^\s:]+:\d{1,5}$/, 'HERALD_ADVERTISE must be host:port').optional(),
  HERALD_LEASE_MS: envInt(1000).default(10_000),
  HERALD_REDIS_COMMAND_TIMEOUT_MS: envInt(100).default(2000),
  HERALD_REDIS_PROBE_MS: envInt(100).default(1000),
  HERALD_MAX_MESSAGE_BYTES: envInt(128, 256 * 1024 * 1024).default(65_536),
  HERALD_HEARTBEAT_MS: envInt(100).default(25_000),
  HERALD_DRAIN_MS: SharedEnv.HERALD_DRAIN_MS,
  HERALD_SEND_BUFFER_BYTES: envInt(1024).default(1024 * 1024),
  HERALD_HANDSHAKE_TIMEOUT_MS: SharedEnv.HERALD_HANDSHAKE_TIMEOUT_MS,
  HERALD_MAX_CONNECTIONS: SharedEnv.HERALD_MAX_CONNECTIONS.default(20_000),
  HERALD_CONFIG: z.string().min(1).optional(),
  HERALD_PER_MESSAGE_DEFLATE: envBool.default(false),
  HERALD_AUTH: z.enum(['none', 'optional', 'required']).default('none'),
  HERALD_JWT_SECRET: z.string().min(32, 'HERALD_JWT_SECRET must be at least 32 bytes').optional(),
  HERALD_JWT_PUBLIC_KEY: z.string().min(1).optional(),
  HERALD_JWKS_FILE: z.string().min(1).optional(),
  HERALD_JWT_CLOCK_TOLERANCE_MS: envInt(0, 3_600_000).default(1000),
  HERALD_JWT_ISSUER: z.string().min(1).optional(),
  HERALD_JWT_AUDIENCE: z.string().min(1).optional(),
  HERALD_AUTH_TIMEOUT_MS: envInt(100).default(5000),
  HERALD_ALLOWED_ORIGINS: envList
    .refine((l) => l.every((o) => normalizeOrigin(o) !== undefined), 'HERALD_ALLOWED_ORIGINS must be a comma-separated list of scheme://host[:port]')
    .optional(),
  HERALD_RATE_FRAMES_PER_S: envInt(0).default(DEFAULT_RATE_LIMITS.framesPerSec),
  HERALD_RATE_FRAMES_BURST: envInt(1).default(DEFAULT_RATE_LIMITS.framesBurst),
  HERALD_RATE_BYTES_PER_S: envInt(0).default(DEFAULT_RATE_LIMITS.bytesPerSec),
  HERALD_RATE_BYTES_BURST: envInt(1).default(DEFAULT_RATE_LIMITS.bytesBurst),
  HERALD_RATE_ERRORS_PER_S: envInt(0).default(DEFAULT_RATE_LIMITS.errorsPerSec),
  HERALD_RATE_ERRORS_BURST: envInt(1).default(DEFAULT_RATE_LIMITS.errorsBurst),
  HERALD_RATE_MAX_REFUSED: envInt(0).default(DEFAULT_RATE_LIMITS.maxRefused),
  HERALD_MAX_CONNECTIONS_PER_IP: SharedEnv.HERALD_MAX_CONNECTIONS_PER_IP.default(0),
  HERALD_TRUSTED_PROXIES: SharedEnv.HERALD_TRUSTED_PROXIES,
  HERALD_MAX_UPGRADES_PER_S: envInt(0).default(1000),
  HERALD_MAX_FRAGMENTS: envInt(1).default(1024),
  HERALD_MAX_HEADER_BYTES: envInt(1024, 1024 * 1024).default(16_384),
  HERALD_MAX_JSON_DEPTH: envInt(2, 10_000).default(DEFAULT_MAX_JSON_DEPTH),
  HERALD_MAX_FRAMES_IN_FLIGHT: envInt(1, 100_000).default(DEFAULT_MAX_FRAMES_IN_FLIGHT),
  HERALD_WRITE_BATCH_MS: envInt(0, MAX_WRITE_WINDOW_MS).default(DEFAULT_WRITE_BATCH.windowMs),
  HERALD_WRITE_BATCH_MAX_MS: envInt(0, MAX_WRITE_WINDOW_MS).optional(),
  HERALD_WRITE_BATCH_MIN_RATE: envInt(0).default(DEFAULT_WRITE_BATCH.minFramesPerSec),
  HERALD_TLS_CERT: TlsEnv.HERALD_TLS_CERT,
  HERALD_TLS_KEY: TlsEnv.HERALD_TLS_KEY,
  HERALD_REDIS_CA: TlsEnv.HERALD_REDIS_CA,
  LOG_LEVEL: SharedEnv.LOG_LEVEL,
  HERALD_LOG_BACKLOG_BYTES: SharedEnv.HERALD_LOG_BACKLOG_BYTES,
  HERALD_POLL_HOLD_MS: envInt(100, 600_000).default(DEFAULT_HTTP_FALLBACK.pollHoldMs),
  HERALD_HTTP_SESSION_IDLE_MS: envInt(1000).default(DEFAULT_HTTP_FALLBACK.idleMs),
  HERALD_HTTP_MAX_EMIT_FRAMES: envInt(1, 10_000).default(DEFAULT_HTTP_FALLBACK.maxEmitFrames),
  HERALD_HTTP_FORWARD_TIMEOUT_MS: envInt(100).default(DEFAULT_HTTP_FALLBACK.forwardTimeoutMs),
  HERALD_SSE_REPLAY_BYTES: envInt(0, 64 * 1024 * 1024).default(DEFAULT_HTTP_FALLBACK.replayBytes),
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
  /** Redis URL; unset (and no cluster) runs on the embedded in-memory broker. */
  redisUrl?: string;
  /** Seed nodes of a Redis Cluster (`HERALD_REDIS_CLUSTER`), exclusive with `redisUrl`. @default undefined */
  redisCluster?: RedisClusterSeed[];
  /** Hash-tag partitions on a Redis Cluster (`HERALD_REDIS_PARTITIONS`). @default 128 */
  redisPartitions: number;
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
  /** Log bytes held back while stdout takes nothing; more lines are dropped and counted (`HERALD_LOG_BACKLOG_BYTES`). @default 1048576 */
  logBacklogBytes: number;
  /** Authentication mode. @default "none" */
  authMode: AuthMode;
  /** HS256 shared secret (at least 32 bytes). */
  jwtSecret?: string;
  /** Contents of the PEM public key (RS256/ES256) named by `HERALD_JWT_PUBLIC_KEY`. */
  jwtPublicKeyPem?: string;
  /** Path of a JWKS file (`HERALD_JWKS_FILE`). */
  jwksFile?: string;
  /** Clock skew tolerated on `exp`/`nbf`, in ms. @default 1000 */
  jwtClockToleranceMs: number;
  /** Required `iss` claim; unset = not checked. */
  jwtIssuer?: string;
  /** Required `aud` claim; unset = not checked. */
  jwtAudience?: string;
  /** Deadline for the `auth` frame in mode `required`, in ms; then close 4001. @default 5000 */
  authTimeoutMs: number;
  /** Exact `Origin` allowlist; unset allows every origin. */
  allowedOrigins?: string[];
  /** Per-connection rate limits of `/ws`. @default DEFAULT_RATE_LIMITS */
  rate: RateLimits;
  /** Open connections per client address; 0 = unlimited. @default 0 */
  maxConnectionsPerIp: number;
  /** Proxies whose `X-Forwarded-For` is believed. @default [] */
  trustedProxies: string[];
  /** Upgrades accepted per second by this worker; 0 = unlimited. @default 1000 */
  maxUpgradesPerSec: number;
  /** Fragments per message; more close the connection with 1008. @default 1024 */
  maxFragments: number;
  /** Deepest nesting of arrays/objects in a client frame; deeper is answered `bad_request`. @default 64 */
  maxJsonDepth: number;
  /** Frames of one connection queued or being handled, unanswered; more are answered `rate_limited`. @default 64 */
  maxFramesInFlight: number;
  /** Largest HTTP header block, in bytes (431 above). @default 16384 */
  maxHeaderBytes: number;
  /** Broadcast write batching under load (`write-coalescer.ts`). @default { windowMs: 8, maxWindowMs: 32, minFramesPerSec: 10000 } */
  writeBatch: WriteBatchOptions;
  /** Certificate and key (`HERALD_TLS_CERT`, `HERALD_TLS_KEY`): the worker serves https/wss. Unset = plain HTTP. */
  tls?: TlsFiles;
  /** ioredis TLS options for a `rediss://` `REDIS_URL` with `HERALD_REDIS_CA`. @default {} */
  redisTls: { tls?: { ca: Buffer } };
  /**
   * The HTTP fallback (docs/protocol.md): how long a `GET /poll` is held (`HERALD_POLL_HOLD_MS`,
   * default 25000), how long a session with nothing attached lives (`HERALD_HTTP_SESSION_IDLE_MS`,
   * default 30000), frames per `POST /emit` (`HERALD_HTTP_MAX_EMIT_FRAMES`, default 100), and the
   * wait for a forwarded request's answer (`HERALD_HTTP_FORWARD_TIMEOUT_MS`, default 5000), and the
   * written SSE frames kept per session for a resume (`HERALD_SSE_REPLAY_BYTES`, default 65536).
   */
  http: { pollHoldMs: number; idleMs: number; maxEmitFrames: number; forwardTimeoutMs: number; replayBytes: number };
}

/**
 * Reads and validates the worker configuration from environment variables.
 * @throws ConfigError naming every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = parseEnv(EnvSchema, env);
  const redis = redisTarget(e);
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
  if (e.HERALD_AUTH !== 'none' && !e.HERALD_JWT_SECRET && !e.HERALD_JWT_PUBLIC_KEY && !e.HERALD_JWKS_FILE) {
    throw new ConfigError(`HERALD_AUTH=${e.HERALD_AUTH} needs HERALD_JWT_SECRET, HERALD_JWT_PUBLIC_KEY or HERALD_JWKS_FILE`);
  }
  let jwtPublicKeyPem: string | undefined;
  if (e.HERALD_JWT_PUBLIC_KEY) {
    try {
      jwtPublicKeyPem = readFileSync(e.HERALD_JWT_PUBLIC_KEY, 'utf8');
    } catch (err) {
      throw new ConfigError(`HERALD_JWT_PUBLIC_KEY ${e.HERALD_JWT_PUBLIC_KEY}: ${(err as Error).message}`);
    }
  }
  return {
    tls: tlsFiles(e.HERALD_TLS_CERT, e.HERALD_TLS_KEY),
    redisTls: redisTlsOptions(e.REDIS_URL, e.HERALD_REDIS_CA),
    authMode: e.HERALD_AUTH,
    jwtSecret: e.HERALD_JWT_SECRET,
    jwtPublicKeyPem,
    jwksFile: e.HERALD_JWKS_FILE,
    jwtClockToleranceMs: e.HERALD_JWT_CLOCK_TOLERANCE_MS,
    jwtIssuer: e.HERALD_JWT_ISSUER,
    jwtAudience: e.HERALD_JWT_AUDIENCE,
    authTimeoutMs: e.HERALD_AUTH_TIMEOUT_MS,
    allowedOrigins: e.HERALD_ALLOWED_ORIGINS,
    rate: {
      framesPerSec: e.HERALD_RATE_FRAMES_PER_S,
      framesBurst: e.HERALD_RATE_FRAMES_BURST,
      bytesPerSec: e.HERALD_RATE_BYTES_PER_S,
      bytesBurst: e.HERALD_RATE_BYTES_BURST,
      errorsPerSec: e.HERALD_RATE_ERRORS_PER_S,
      errorsBurst: e.HERALD_RATE_ERRORS_BURST,
      maxRefused: e.HERALD_RATE_MAX_REFUSED,
    },
    maxConnectionsPerIp: e.HERALD_MAX_CONNECTIONS_PER_IP,
    trustedProxies: e.HERALD_TRUSTED_PROXIES,
    maxUpgradesPerSec: e.HERALD_MAX_UPGRADES_PER_S,
    maxFragments: e.HERALD_MAX_FRAGMENTS,
    maxHeaderBytes: e.HERALD_MAX_HEADER_BYTES,
    maxJsonDepth: e.HERALD_MAX_JSON_DEPTH,
    maxFramesInFlight: e.HERALD_MAX_FRAMES_IN_FLIGHT,
    writeBatch: {
      windowMs: e.HERALD_WRITE_BATCH_MS,
      // Unset: the default's ratio to the default window (a lowered HERALD_WRITE_BATCH_MS lowers it too).
      maxWindowMs: e.HERALD_WRITE_BATCH_MAX_MS ?? Math.min(MAX_WRITE_WINDOW_MS, Math.round((e.HERALD_WRITE_BATCH_MS * DEFAULT_WRITE_BATCH.maxWindowMs) / Math.max(1, DEFAULT_WRITE_BATCH.windowMs))),
      minFramesPerSec: e.HERALD_WRITE_BATCH_MIN_RATE,
    },
    port: e.PORT,
    host: e.HOST,
    nodeId: e.NODE_ID ?? `${hostname().replace(/[^A-Za-z0-9_.\-]/g, '-').slice(0, 40)}-${process.pid}-${randomBytes(3).toString('hex')}`,
    redisUrl: redis.kind === 'single' ? redis.url : undefined,
    redisCluster: redis.kind === 'cluster' ? redis.seeds : undefined,
    redisPartitions: e.HERALD_REDIS_PARTITIONS,
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
    logBacklogBytes: e.HERALD_LOG_BACKLOG_BYTES,
    http: { pollHoldMs: e.HERALD_POLL_HOLD_MS, idleMs: e.HERALD_HTTP_SESSION_IDLE_MS, maxEmitFrames: e.HERALD_HTTP_MAX_EMIT_FRAMES, forwardTimeoutMs: e.HERALD_HTTP_FORWARD_TIMEOUT_MS, replayBytes: e.HERALD_SSE_REPLAY_BYTES },
  };
}
