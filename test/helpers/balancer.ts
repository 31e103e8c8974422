import http from 'node:http';
import type { Redis } from 'ioredis';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from './child.js';

/** Path of the built balancer bin. */
export const BALANCER_BIN = fileURLToPath(new URL('../../packages/balancer/dist/bin/herald-balancer.js', import.meta.url));

/** A `herald-balancer` process started by a test. */
export interface BalancerProcess {
  port: number;
  /** The instance's id (`HERALD_BALANCER_ID`), as sent to workers in `X-Herald-Balancer`. */
  id: string;
  url: string;
  wsUrl: string;
  child: Child;
  /** `GET /balancer/status`. */
  status(): Promise<BalancerStatusBody>;
  /** Open file descriptors of the balancer process (Linux `/proc`). */
  fds(): number;
  /** Sends `signal` (SIGTERM: graceful) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The parts of `/balancer/status` tests read. */
export interface BalancerStatusBody {
  status: string;
  id: string;
  healthy: number;
  relay: 'native' | 'js';
  connections: { clients: number; tunnels: number; requests: number };
  workers: Array<{ address: string; node: string | null; state: string; healthy: boolean; connections: number; lastError: string | null }>;
}

/**
 * `GET /balancer/status` on a fresh connection that is closed afterwards (agent: false), so
 * reading the status does not leave a keep-alive socket in the balancer's fd count.
 */
export function getStatus(port: number): Promise<BalancerStatusBody> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/balancer/status', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as BalancerStatusBody);
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('error', reject);
  });
}

/** Open file descriptors of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Starts `herald-balancer` on a free port (PORT=0, 127.0.0.1) with `env` and waits for its
 * `listening` line. Health checks default to every 100 ms so tests converge fast.
 */
export async function startBalancer(env: NodeJS.ProcessEnv): Promise<BalancerProcess> {
  const child = spawnChild('balancer', process.execPath, [BALANCER_BIN], {
    PORT: '0',
    HOST: '127.0.0.1',
    HERALD_HEALTH_INTERVAL_MS: '100',
    HERALD_HEALTH_TIMEOUT_MS: '500',
    HERALD_DISCOVERY_INTERVAL_MS: '100',
    HERALD_DRAIN_MS: '1000',
    LOG_LEVEL: 'info',
    ...env,
  });
  const line = await child.waitForLine((l) => l.includes('"msg":"listening"'));
  const { port, id, tls } = JSON.parse(line) as { port: number; id: string; tls?: boolean };
  // HERALD_TLS_CERT/KEY: the balancer serves https and wss (status() then needs a CA: use httpsGet).
  const s = tls ? 's' : '';
  const url = `http${s}://127.0.0.1:${port}`;
  return {
    port,
    id,
    url,
    wsUrl: `ws${s}://127.0.0.1:${port}`,
    child,
    status: () => getStatus(port),
    fds: () => fdCount(child.pid),
    stop: (signal = 'SIGTERM') => child.stop(signal),
  };
}

/**
 * Writes one worker's membership record in the documented format (`{prefix}nodes` sorted set
 * scored by lease expiry + `{prefix}node:{id}` JSON with a PX TTL), refreshed every lease/3 —
 * what a worker started with REDIS_URL does. Lets the discovery tests run against workers on the
 * embedded broker. `stop(true)` deletes the record (graceful shutdown); `stop(false)` just stops
 * refreshing (a killed worker whose lease runs out).
 */
export function announce(redis: Redis, prefix: string, id: string, address: string, leaseMs = 3000): { stop(remove: boolean): Promise<void> } {
  const started = Date.now();
  const write = async () => {
    const now = Date.now();
    await redis
      .multi()
      .zadd(`${prefix}nodes`, now + leaseMs, id)
      .set(`${prefix}node:${id}`, JSON.stringify({ id, address, started, heartbeat: now }), 'PX', leaseMs)
      .exec();
  };
  let running = write();
  const timer = setInterval(() => {
    running = write().catch(() => undefined);
  }, leaseMs / 3);
  return {
    async stop(remove: boolean) {
      clearInterval(timer);
      await running.catch(() => undefined);
      if (remove) {
        await redis.zrem(`${prefix}nodes`, id);
        await redis.del(`${prefix}node:${id}`);
      }
    },
  };
}

/**
 * Maps each key to the node that answers `GET /readyz?sid=<key>` through the balancer
 * (the worker's readiness body names its node), `concurrency` requests at a time.
 */
export async function nodesForKeys(baseUrl: string, keys: readonly string[], concurrency = 16): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  let next = 0;
  const run = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const res = await fetch(`${baseUrl}/readyz?sid=${encodeURIComponent(key)}`);
      const body = (await res.json()) as { node?: string };
      if (res.status !== 200 || !body.node) throw new Error(`GET /readyz?sid=${key}: ${res.status} ${JSON.stringify(body)}`);
      result.set(key, body.node);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, run));
  return result;
}
