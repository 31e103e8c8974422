import { spawnChild, type Child } from './child.js';
import { freePort } from './ports.js';

/** A redis-server of the test's own, on a free port, keeping nothing on disk. */
export interface TestRedis {
  port: number;
  url: string;
  child: Child;
  /** Stops it (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `redis-server` on a free port (optionally a given one, to restart on the same port);
 * `extraArgs` are appended (e.g. `--requirepass`, `--user` ACL directives).
 */
export async function startRedis(port?: number, extraArgs: string[] = []): Promise<TestRedis> {
  const p = port ?? (await freePort());
  const child = spawnChild(`redis:${p}`, 'redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'notice', ...extraArgs]);
  await child.waitForLine((l) => l.includes('Ready to accept connections'));
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    child,
    stop: async (signal = 'SIGTERM') => {
      await child.stop(signal);
    },
  };
}
