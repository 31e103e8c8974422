import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Child } from './helpers/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Names of C toolchain programs hidden from the install: compilers, their triplet/versioned names, make. */
const TOOLCHAIN = /^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|make|gmake)(-\d+)?$|^[\w.]+-linux-gnu-(gcc|g\+\+|cc|c\+\+|cpp)(-\d+)?$/;

/**
 * A PATH with every program of this one except the C toolchain: a directory of symlinks. The
 * programs stay installed (other suites use them); the install under test just cannot find them.
 */
function pathWithoutCompilers(dir: string): string {
  mkdirSync(dir);
  for (const source of (process.env.PATH ?? '').split(delimiter)) {
    if (!source || !existsSync(source)) continue;
    for (const name of readdirSync(source)) {
      if (TOOLCHAIN.test(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(source, name), join(dir, name));
    }
  }
  return dir;
}

/**
 * Issue 11's install check: a clean clone on a machine without g++, cc and make runs `npm ci` to
 * exit 0 (the optional relay says once why it is missing), and herald-balancer starts on the JS
 * data plane with one warning line. Slow (a registry install and a full build): about a minute.
 */
describe('install without a C compiler (slow, clean clone, npm registry)', function () {
  this.timeout(300_000);
  let work: string;
  let clone: string;
  let bin: string;
  let install: { stdout: string; stderr: string };
  let balancer: Child | undefined;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'herald-nocc-'));
    clone = join(work, 'herald');
    await run('git', ['clone', '--quiet', '--no-local', ROOT, clone]);
    bin = pathWithoutCompilers(join(work, 'bin'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin, CC: '', CXX: '' };
    delete env.npm_config_node_gyp;
    install = await run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: clone, env, maxBuffer: 1 << 26 });
  });

  after(async () => {
    if (balancer && balancer.proc.exitCode === null) balancer.proc.kill('SIGKILL');
    await balancer?.exited;
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('hides the toolchain from the install', async () => {
    for (const tool of ['cc', 'gcc', 'g++', 'make']) {
      const found = await run('sh', ['-c', `command -v ${tool} || true`], { env: { PATH: bin } });
      expect(found.stdout.trim(), tool).to.equal('');
    }
  });

  it('npm ci exits 0, says once why the relay is missing, and builds no add-on', () => {
    const output = install.stdout + install.stderr;
    expect(output.match(/native relay not built/g) ?? [], output).to.have.length(1);
    expect(existsSync(join(clone, 'packages', 'relay', 'build', 'Release', 'herald_relay.node'))).to.equal(false);
    expect(existsSync(join(clone, 'packages', 'balancer', 'dist', 'bin', 'herald-balancer.js'))).to.equal(true);
  });

  it('herald-balancer starts on the JS data plane with one warning line', async () => {
    const proc = spawn(process.execPath, [join(clone, 'packages', 'balancer', 'bin', 'herald-balancer.js')], {
      cwd: clone,
      env: { ...process.env, PATH: bin, PORT: '0', HOST: '127.0.0.1', HERALD_WORKERS: '127.0.0.1:9', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    balancer = new Child(proc, 'balancer');
    const line = await balancer.waitForLine((l) => l.includes('"msg":"listening"'), 30_000);
    const port = (JSON.parse(line) as { port: number }).port;
    const status = (await (await fetch(`http://127.0.0.1:${port}/balancer/status`)).json()) as { relay: string };
    expect(status.relay).to.equal('js');
    const warnings = balancer.lines.filter((l) => l.includes('"level":40'));
    expect(warnings.filter((l) => l.includes('native relay not available')), warnings.join('\n')).to.have.length(1);
  });
});
