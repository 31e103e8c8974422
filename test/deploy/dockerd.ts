import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../helpers/wait.js';
import { LOG_DIR } from './exec.js';

/** A dockerd of the test's own: its own socket, exec root and (persistent) data root. */
export interface Dockerd {
  /** `unix://…` for DOCKER_HOST. */
  host: string;
  /** Environment that points docker, docker-compose and Compose v2 at this daemon. */
  env: NodeJS.ProcessEnv;
  storageDriver: string;
  stop(): Promise<void>;
}

function ping(socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`/_ping answered ${res.statusCode}`));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('/_ping timed out')));
    req.end();
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A dockerd left behind by an earlier run of this suite that was killed before its `after`
 * hook: it holds the data root, so it is stopped — only when its command line names this data
 * root, so no other daemon is touched.
 */
async function stopLeftover(pidFile: string, dataRoot: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!pid || !alive(pid)) return;
  const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') : [];
  if (!cmdline.some((arg) => arg.endsWith('dockerd')) || !cmdline.includes(dataRoot)) {
    throw new Error(`${pidFile} names pid ${pid}, which is not a dockerd on ${dataRoot}; remove the file if it is stale`);
  }
  process.stderr.write(`      stopping a dockerd left by an earlier run (pid ${pid})\n`);
  process.kill(pid, 'SIGTERM');
  await eventually(() => {
    if (alive(pid)) throw new Error(`dockerd ${pid} still running`);
  }, { timeout: 30_000, interval: 200 });
}

function launch(storageDriver: string, dataRoot: string, execRoot: string, socket: string, pidFile: string, logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  return spawn('dockerd', [
    '--storage-driver', storageDriver,
    '--data-root', dataRoot,
    '--exec-root', execRoot,
    '-H', `unix://${socket}`,
    '--pidfile', pidFile,
  ], { stdio: ['ignore', out, out] });
}

/**
 * Starts dockerd for the deploy suite. overlay2 first (a layer costs only its changes); vfs
 * (a full copy per layer, slower but works on any file system) when overlay2 cannot start.
 * `HERALD_DOCKER_STORAGE_DRIVER` forces one.
 */
export async function startDockerd(cacheDir: string): Promise<Dockerd> {
  const dataRoot = join(cacheDir, 'data');
  const pidFile = join(cacheDir, 'dockerd.pid');
  mkdirSync(dataRoot, { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true });
  await stopLeftover(pidFile, dataRoot);
  // Socket paths are limited to 108 bytes; containerd puts its sockets under the exec root.
  const execRoot = mkdtempSync(join(tmpdir(), 'herald-dockerd-'));
  const socket = join(execRoot, 'docker.sock');
  const logFile = `${LOG_DIR}/dockerd.log`;
  const drivers = process.env.HERALD_DOCKER_STORAGE_DRIVER ? [process.env.HERALD_DOCKER_STORAGE_DRIVER] : ['overlay2', 'vfs'];
  let lastError: Error | undefined;
  for (const storageDriver of drivers) {
    const child = launch(storageDriver, dataRoot, execRoot, socket, pidFile, logFile);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let gone = false;
    void exited.then(() => (gone = true));
    try {
      await eventually(async () => {
        if (gone) throw Object.assign(new Error(`dockerd --storage-driver ${storageDriver} exited; see ${logFile}`), { fatal: true });
        await ping(socket);
      }, { timeout: 60_000, interval: 200 });
    } catch (error) {
      lastError = error as Error;
      if (!gone) {
        child.kill('SIGTERM');
        await exited;
      }
      continue;
    }
    const host = `unix://${socket}`;
    return {
      host,
      storageDriver,
      env: { DOCKER_HOST: host },
      stop: async () => {
        if (!gone) {
          child.kill('SIGTERM');
          await exited;
        }
        rmSync(execRoot, { recursive: true, force: true });
      },
    };
  }
  rmSync(execRoot, { recursive: true, force: true });
  throw new Error(`dockerd did not start (${drivers.join(', ')}): ${lastError?.message}`);
}
