import { mkdtempSync, writeFileSync, rmSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { ServerProcess } from './server-process.js';
import { Deployment } from './deployment.js';
import { freePort } from '../ports.js';
import { SkipError } from '../skip-error.js';
import type { BenchCert } from './bench-cert.js';

const WS_BASELINE = fileURLToPath(new URL('../baselines/ws-server.js', import.meta.url));
const SOCKETIO_BASELINE = fileURLToPath(new URL('../baselines/socketio-server.js', import.meta.url));
const HTTP_PROXY_BASELINE = fileURLToPath(new URL('../baselines/http-proxy-server.js', import.meta.url));

/** Path of a workspace package's built bin, or undefined when that package is not installed/built. */
function packageBin(pkg: string, bin: string): string | undefined {
  try {
    // createRequire, not import.meta.resolve: test runners that load this file as CommonJS
    // (tsx under mocha) do not provide the latter.
    return join(dirname(createRequire(import.meta.url).resolve(pkg)), 'bin', `${bin}.js`);
  } catch {
    return undefined;
  }
}

const listening = (l: string) => l.includes('"msg":"listening"');
const portOf = (line: string) => (JSON.parse(line) as { port: number }).port;

async function startNodeServers(name: string, script: string, count: number, env: NodeJS.ProcessEnv): Promise<Deployment> {
  const procs = Array.from({ length: count }, (_, i) => ServerProcess.node(`${name}#${i}`, script, { PORT: '0', HOST: '127.0.0.1', ...env }));
  try {
    // Several Node processes starting at once on a small, shared machine take a while each.
    const ms = 15_000 + 5_000 * Math.max(0, count - 2);
    const ports = await Promise.all(procs.map(async (p) => portOf(await p.waitForLine(listening, ms))));
    return new Deployment(count > 1 ? `${name} ×${count}` : name, procs, ports);
  } catch (err) {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    throw err;
  }
}

/** Namespace options of the bench's channels: no presence, no history (like a Socket.IO room). */
function heraldConfigFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify({ namespaces: { bench: { presence: false, historySize: 0 } } }));
  return file;
}

/**
 * Starts `count` Herald workers (`herald-worker`, built). With `redisUrl` they form a
 * cluster; a build without the Redis broker is reported as a {@link SkipError}.
 */
export async function startHerald(count: number, redisUrl?: string, env: NodeJS.ProcessEnv = {}): Promise<Deployment> {
  const bin = packageBin('@herald/server', 'herald-worker');
  if (!bin) throw new SkipError('@herald/server is not built (run npm run build)');
  const fullEnv: NodeJS.ProcessEnv = {
    HERALD_CONFIG: heraldConfigFile(),
    LOG_LEVEL: 'info',
    HERALD_REDIS_PREFIX: `bench${process.pid}:`,
    // Publishers here send far above the default 100 frames/s per connection on purpose. The
    // limits are raised, not switched off, so the token buckets still run (and cost) as in
    // production; Socket.IO and the bare ws server have no limiter at all.
    HERALD_RATE_FRAMES_PER_S: '10000000',
    HERALD_RATE_FRAMES_BURST: '10000000',
    HERALD_RATE_BYTES_PER_S: '10000000000',
    HERALD_RATE_BYTES_BURST: '10000000000',
    // The publishers do not wait for answers: a worker slowed down (a profiler, a loaded machine)
    // would otherwise hold more than the default 64 frames in flight and close the publisher.
    HERALD_MAX_FRAMES_IN_FLIGHT: '100000',
    // `conns` opens connections faster than the default 1,000 upgrades/s per worker.
    HERALD_MAX_UPGRADES_PER_S: '1000000',
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    ...env,
  };
  try {
    return await startNodeServers('herald', bin, count, fullEnv);
  } catch (err) {
    const msg = (err as Error).message;
    if (redisUrl && /no Redis broker|REDIS_URL/.test(msg)) {
      throw new SkipError('this build of herald-worker has no Redis broker (the cluster work has not landed on main)');
    }
    throw err;
  }
}

/**
 * Whether the built herald-worker reads `HERALD_REDIS_CLUSTER` (its config schema names the
 * variable); otherwise the reason, for a skipped row. A worker that ignored the variable would
 * silently run on its in-memory broker and the cluster row would measure nothing.
 */
export function heraldSupportsRedisCluster(): true | string {
  const bin = packageBin('@herald/server', 'herald-worker');
  if (!bin) return '@herald/server is not built (run npm run build)';
  const dist = dirname(dirname(bin));
  const named = readdirSync(dist).some((f) => f.endsWith('.js') && readFileSync(join(dist, f), 'utf8').includes('HERALD_REDIS_CLUSTER'));
  return named ? true : 'herald-worker does not support HERALD_REDIS_CLUSTER yet (issue 14 items 1-2, the broker work)';
}

/** Starts `count` bare ws baseline servers (sharing broadcasts through `redisUrl` if given). */
export function startWsBaseline(count: number, redisUrl?: string): Promise<Deployment> {
  return startNodeServers('ws', WS_BASELINE, count, redisUrl ? { REDIS_URL: redisUrl } : {});
}

/** Starts `count` Socket.IO servers (with the Redis adapter on `redisUrl` if given). */
export function startSocketIo(count: number, redisUrl?: string): Promise<Deployment> {
  return startNodeServers('socket.io', SOCKETIO_BASELINE, count, redisUrl ? { REDIS_URL: redisUrl } : {});
}

/** A redis-server of the bench's own on a free port, keeping nothing on disk. */
export async function startRedis(): Promise<{ url: string; proc: ServerProcess }> {
  const port = await freePort();
  const proc = ServerProcess.program('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await proc.waitForLine((l) => l.includes('Ready to accept connections'));
  return { url: `redis://127.0.0.1:${port}`, proc };
}

/**
 * Starts herald-balancer in front of `workers` (static list).
 *
 * @param relay - its data plane for open tunnels (`HERALD_RELAY`): the native relay thread (the
 *   default, required here so a missing build is a skip, not a silent fallback) or Node's pipes
 *   (always with `tls`: the relay cannot carry TLS)
 * @param tls - serve wss with this certificate (`HERALD_TLS_CERT`/`KEY`), plain HTTP to the workers. @default undefined
 */
export async function startBalancer(workers: Deployment, relay: 'native' | 'js' = 'native', tls?: BenchCert): Promise<Deployment> {
  const bin = packageBin('@herald/balancer', 'herald-balancer');
  if (!bin) throw new SkipError('@herald/balancer is not on this branch or not built (npm run build)');
  const proc = ServerProcess.node('herald-balancer', bin, {
    PORT: '0',
    HOST: '127.0.0.1',
    HERALD_WORKERS: workers.ports.map((p) => `127.0.0.1:${p}`).join(','),
    HERALD_MAX_CONNECTIONS_PER_IP: '0',
    HERALD_RELAY: tls ? 'js' : relay,
    ...(tls ? { HERALD_TLS_CERT: tls.certFile, HERALD_TLS_KEY: tls.keyFile } : {}),
    LOG_LEVEL: 'info',
  });
  try {
    const port = portOf(await proc.waitForLine(listening));
    return new Deployment('herald-balancer', [proc], [port], tls !== undefined);
  } catch (err) {
    await proc.stop('SIGKILL');
    if (String(err).includes('native relay is not available')) throw new SkipError('the native relay is not built (npm run build needs python3, make and a C compiler)');
    throw err;
  }
}

/** Starts the bare http-proxy baseline in front of `workers` (sticky on `?sid=`). */
export async function startHttpProxy(workers: Deployment): Promise<Deployment> {
  const proc = ServerProcess.node('http-proxy', HTTP_PROXY_BASELINE, {
    PORT: '0',
    HERALD_WORKERS: workers.ports.map((p) => `127.0.0.1:${p}`).join(','),
  });
  try {
    return new Deployment('http-proxy (bare)', [proc], [portOf(await proc.waitForLine(listening))]);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
}

/** Path of the nginx binary. @default /usr/sbin/nginx (`NGINX_BIN` overrides) */
const NGINX = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/**
 * Starts nginx with a prefix of its own and a generated config equivalent to the shipped one
 * (upgrade headers, `hash $arg_sid consistent`, timeouts above the heartbeat), one worker
 * process so it is compared with the one-process balancer.
 *
 * @param tls - terminate TLS with this certificate (the shipped config's protocols), plain HTTP to the workers. @default undefined
 */
export async function startNginx(workers: Deployment, tls?: BenchCert): Promise<Deployment> {
  const prefix = mkdtempSync(join(tmpdir(), 'herald-bench-nginx-'));
  mkdirSync(join(prefix, 'tmp'));
  const port = await freePort();
  const conf = `
worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream herald {
    hash $arg_sid consistent;
${workers.ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
${tls ? `    ssl_certificate ${tls.certFile};\n    ssl_certificate_key ${tls.keyFile};\n    ssl_protocols TLSv1.2 TLSv1.3;\n` : ''}    location / {
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
      proxy_buffering off;
    }
  }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  const proc = ServerProcess.program('nginx', NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], true);
  proc.exited.then(() => rmSync(prefix, { recursive: true, force: true }), () => undefined);
  try {
    await waitForPort(port, proc);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return new Deployment('nginx', [proc], [port], tls !== undefined);
}

/** Polls until something accepts TCP connections on `port` (nginx prints nothing when ready). */
async function waitForPort(port: number, proc: ServerProcess, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc.proc.exitCode !== null) throw new Error(`nginx exited (${proc.proc.exitCode}): ${proc.lines.join('\n')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nginx did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
