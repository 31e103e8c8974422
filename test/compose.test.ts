import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The compose front-ends present here: Compose v2 (`docker compose`) and/or docker-compose 1.x. */
async function composeBinaries(): Promise<Array<{ name: string; command: string; prefix: string[] }>> {
  const found: Array<{ name: string; command: string; prefix: string[] }> = [];
  if ((await run('docker', ['compose', 'version'])).code === 0) found.push({ name: 'docker compose', command: 'docker', prefix: ['compose'] });
  if ((await run('docker-compose', ['version'])).code === 0) found.push({ name: 'docker-compose', command: 'docker-compose', prefix: [] });
  return found;
}

describe('docker-compose.yml (compose config check)', function () {
  this.timeout(120_000);

  it('has no top-level name: (docker-compose 1.29 rejects it) and ships the Dockerfile it builds', () => {
    const text = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');
    expect(text).to.not.match(/^name:/m);
    expect(text).to.not.match(/^version:/m);
    expect(readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')).to.match(/^FROM node:20/m);
    // Scalable worker: no fixed container name, no published port.
    const worker = text.slice(text.indexOf('\n  worker:'), text.indexOf('\n  balancer:'));
    expect(worker).to.not.match(/container_name|ports:/);
    // The same programs pm2 runs.
    const ecosystem = readFileSync(new URL('../ecosystem.config.js', import.meta.url), 'utf8');
    for (const script of ['packages/server/dist/bin/herald-worker.js', 'packages/balancer/dist/bin/herald-balancer.js']) {
      expect(text).to.include(script);
      expect(ecosystem).to.include(script);
    }
  });

  it('passes `config` with every compose binary present (skipped, with the reason, where there is none)', async function () {
    const binaries = await composeBinaries();
    if (binaries.length === 0) {
      console.log('      skipped: neither `docker compose` (v2) nor `docker-compose` (1.x) is installed here');
      this.skip();
    }
    for (const { name, command, prefix } of binaries) {
      const quiet = await run(command, [...prefix, 'config', '-q']);
      expect(quiet.code, `${name} config -q: ${quiet.stderr}`).to.equal(0);
      const services = await run(command, [...prefix, 'config', '--services']);
      // docker-compose 1.29 lists profiled services here too; Compose v2 does not.
      expect(services.stdout.split('\n').filter(Boolean), name).to.include.members(['balancer', 'redis', 'worker']);
      const withNginx = await run(command, [...prefix, '--profile', 'nginx', 'config', '--services']);
      expect(withNginx.stdout.split('\n').filter(Boolean).sort(), name).to.deep.equal(['balancer', 'nginx', 'redis', 'worker']);
      const full = await run(command, [...prefix, 'config']);
      expect(full.stdout, name).to.match(/published: "?8080"?/);
      expect(full.stdout, name).to.include('/etc/nginx/upstream.conf');
      expect(full.stdout, name).to.match(/profiles:\s*\n\s*- nginx/);
    }
  });
});
