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

/**
 * Starts `redis-server` speaking TLS only (`--port 0 --tls-port <free>`) with `cert` (signed by
 * the test CA at `caFile`); clients need no certificate of their own (`--tls-auth-clients no`).
 * `url` is the `rediss://` URL.
 */
export async function startTlsRedis(cert: { certFile: string; keyFile: string }, caFile: string, extraArgs: string[] = []): Promise<TestRedis> {
  const p = await freePort();
  const child = spawnChild(`redis-tls:${p}`, 'redis-server', [
    '--port', '0', '--tls-port', String(p), '--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--tls-ca-cert-file', caFile,
    '--tls-auth-clients', 'no', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'notice', ...extraArgs,
  ]);
  await child.waitForLine((l) => l.includes('Ready to accept connections'));
  return { port: p, url: `rediss://127.0.0.1:${p}`, child, stop: async (signal = 'SIGTERM') => void (await child.stop(signal)) };
}
