import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from './child.js';
import { freePort } from './ports.js';
import { eventually } from './wait.js';
import type { TestCert } from './tls.js';

/** The nginx binary of the Debian package. */
export const NGINX = '/usr/sbin/nginx';
/** Whether the real nginx is installed here. */
export const hasNginx = (): boolean => existsSync(NGINX);

const CONF = fileURLToPath(new URL('../../nginx/nginx.conf', import.meta.url));

/** The shipped nginx, started by a test. */
export interface TestNginx {
  /** Port of the plain-HTTP server (`listen 80` in the shipped config). */
  httpPort: number;
  /** Port of the TLS server (`listen 443 ssl`). */
  httpsPort: number;
  dir: string;
  child: Child;
  stop(): Promise<void>;
}

/**
 * Runs the real nginx with its own `-p` prefix in a temp dir: the shipped `nginx.conf` with only
 * its two `listen` lines substituted (free ports on 127.0.0.1), a `tls.conf` naming `cert`, and
 * an `upstream.conf` holding `servers` (`host:port`), each `max_fails=1 fail_timeout=10s` as in
 * the shipped one. Resolves once the TLS port answers the handshake.
 */
export async function startNginx(servers: string[], cert: TestCert): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const shipped = readFileSync(CONF, 'utf8');
  if (shipped.match(/^\s*listen 80;$/gm)?.length !== 1 || shipped.match(/^\s*listen 443 ssl;$/gm)?.length !== 1) {
    throw new Error('nginx/nginx.conf must have exactly one `listen 80;` and one `listen 443 ssl;` line');
  }
  const conf = shipped.replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${httpPort};`).replace(/^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${httpsPort} ssl;`);
  writeFileSync(join(dir, 'nginx.conf'), conf);
  writeFileSync(join(dir, 'tls.conf'), `ssl_certificate ${cert.certFile};\nssl_certificate_key ${cert.keyFile};\n`);
  writeFileSync(join(dir, 'upstream.conf'), servers.map((s) => `server ${s} max_fails=1 fail_timeout=10s;\n`).join(''));
  const child = spawnChild('nginx', NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`]);
  const stop = async () => {
    await child.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(async () => {
      if (child.proc.exitCode !== null) throw new Error(`nginx exited: ${child.lines.join('\n')}`);
      const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      if (res.status !== 200) throw new Error(`healthz ${res.status}`);
    }, { timeout: 10_000, interval: 50 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { httpPort, httpsPort, dir, child, stop };
}
