import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerProcess } from '../servers/server-process.js';
import { freePort } from '../ports.js';
import { SkipError } from '../skip-error.js';

const SOCKETIO_CSR = fileURLToPath(new URL('../baselines/socketio-csr-server.js', import.meta.url));
/** The channel of both continuity scenarios; its namespace keeps history (Herald). */
export const CONTINUITY_CHANNEL = 'hist:bench';
/** HERALD_DRAIN_MS of the deploy scenario's workers and balancer. */
export const DEPLOY_DRAIN_MS = 2000;

function bin(pkg: string, name: string): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve(pkg)), 'bin', `${name}.js`);
  } catch {
    throw new SkipError(`${pkg} is not built (npm run build)`);
  }
}

const listening = (l: string) => l.includes('"msg":"listening"');

/**
 * One restartable server process on a fixed port (a restart is a new process on the same port,
 * as a deploy does): a Herald worker or a Socket.IO CSR server.
 */
export class Slot {
  proc!: ServerProcess;
  private constructor(readonly port: number, private readonly launch: (port: number) => ServerProcess) {}

  static async start(launch: (port: number) => ServerProcess): Promise<Slot> {
    const slot = new Slot(await freePort(), launch);
    await slot.up();
    return slot;
  }

  /** Starts the process and waits until it listens. */
  async up(): Promise<void> {
    this.proc = this.launch(this.port);
    await this.proc.waitForLine(listening, 20_000);
  }

  /** SIGTERM (a drain for Herald, an exit for Socket.IO), wait for the exit, start a new one. */
  async restart(): Promise<void> {
    await this.proc.stop('SIGTERM', 15_000);
    await this.up();
  }

  stop(): Promise<void> {
    return this.proc.stop('SIGKILL');
  }
}

/** Herald's namespace options for the scenarios: `hist:` keeps 10,000 messages for 10 minutes. */
function configFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-cont-'));
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify({ namespaces: { hist: { presence: false, historySize: 10_000, historyTtlMs: 600_000 } } }));
  return file;
}

/** Launchers of one worker of each target, on Redis `redisUrl`. */
export function workerLauncher(target: string, redisUrl: string, prefix: string): (port: number) => ServerProcess {
  if (target === 'herald') {
    const script = bin('@herald/server', 'herald-worker');
    const config = configFile();
    let n = 0;
    return (port) =>
      ServerProcess.node(`herald#${n}`, script, {
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ID: `w${port}-${n++}`,
        REDIS_URL: redisUrl,
        HERALD_REDIS_PREFIX: prefix,
        HERALD_CONFIG: config,
        HERALD_DRAIN_MS: String(DEPLOY_DRAIN_MS),
        HERALD_LEASE_MS: '3000',
        HERALD_MAX_UPGRADES_PER_S: '1000000',
        LOG_LEVEL: 'info',
      });
  }
  let n = 0;
  return (port) => ServerProcess.node(`socket.io-csr#${n}`, SOCKETIO_CSR, { PORT: String(port), NODE_ID: `sio${port}-${n++}`, REDIS_URL: redisUrl });
}

/** herald-balancer in front of `slots` (static list; Redis for the drain request at SIGTERM). */
export function balancerLauncher(slots: Slot[], redisUrl: string, prefix: string): (port: number) => ServerProcess {
  const script = bin('@herald/balancer', 'herald-balancer');
  return (port) =>
    ServerProcess.node('herald-balancer', script, {
      PORT: String(port),
      HOST: '127.0.0.1',
      HERALD_WORKERS: slots.map((s) => `127.0.0.1:${s.port}`).join(','),
      REDIS_URL: redisUrl,
      HERALD_REDIS_PREFIX: prefix,
      HERALD_DRAIN_MS: String(DEPLOY_DRAIN_MS),
      HERALD_HEALTH_INTERVAL_MS: '200',
      HERALD_MAX_CONNECTIONS_PER_IP: '0',
      HERALD_RELAY: 'auto',
      LOG_LEVEL: 'info',
    });
}

/** The healthy workers the balancer on `port` reports. */
export async function healthyWorkers(port: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/balancer/status`);
    return ((await res.json()) as { healthy: number }).healthy;
  } catch {
    return 0;
  }
}

/** Polls `fn` until true or `ms` passed; returns whether it became true. */
export async function until(fn: () => boolean | Promise<boolean>, ms: number, interval = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, interval));
  }
  return fn();
}

/** The `q` quantile (0..1) of `values`, 0 when empty. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Highest count of `times` within any `windowMs`, as a rate per second. */
export function peakRate(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! >= windowMs) i++;
    peak = Math.max(peak, j - i + 1);
  }
  return (peak * 1000) / windowMs;
}
