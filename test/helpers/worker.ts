import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from './child.js';

/** Path of the built worker bin. */
export const WORKER_BIN = fileURLToPath(new URL('../../packages/server/dist/bin/herald-worker.js', import.meta.url));

/** A worker process started by a test. */
export interface WorkerProcess {
  port: number;
  node: string;
  url: string;
  wsUrl: string;
  child: Child;
  /** Sends `signal` (SIGTERM: graceful drain) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `herald-worker` on a free port (PORT=0) with `env`, and waits until it listens (`url`/`wsUrl` are https/wss with HERALD_TLS_CERT). */
export async function startWorker(env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> {
  const child = spawnChild('worker', process.execPath, [WORKER_BIN], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env });
  const line = await child.waitForLine((l) => l.includes('"msg":"listening"')).catch(async (err) => {
    await child.stop('SIGKILL');
    throw err;
  });
  const { port, node, tls } = JSON.parse(line) as { port: number; node: string; tls?: boolean };
  // HERALD_TLS_CERT/KEY: the worker serves https and wss.
  const s = tls ? 's' : '';
  return {
    port,
    node,
    url: `http${s}://127.0.0.1:${port}`,
    wsUrl: `ws${s}://127.0.0.1:${port}`,
    child,
    stop: (signal = 'SIGTERM') => child.stop(signal),
  };
}
