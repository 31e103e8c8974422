import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child } from './helpers/child.js';
import { TEST_SECRET } from './helpers/tokens.js';
import { startWorker, WORKER_BIN, type WorkerProcess } from './helpers/worker.js';
import { TestClient } from './helpers/ws-client.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKEN_BIN = join(ROOT, 'packages/server/bin/herald-token.js');

function exec(command: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** A TCP server holding a port, as another program would. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/** `npm run <script>` in its own process group, so the test can stop everything it started. */
function npmRun(script: string, env: NodeJS.ProcessEnv): Child {
  const proc = spawn('npm', ['run', script, '--silent'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return new Child(proc, `npm run ${script}`);
}

async function stopGroup(child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) process.kill(-child.pid, 'SIGTERM');
  await child.exited;
}

const listening = (line: string) => line.includes('"msg":"listening"');

describe('first run (npm install, npm start, npm run dev, port taken, herald-token)', function () {
  this.timeout(120_000);

  it('npm install leaves package-lock.json as committed', async () => {
    // The manifests npm reads (binding.gyp included: npm gives a package with one an install
    // script of its own, which the lock records as hasInstallScript), in a scratch copy.
    const dir = mkdtempSync(join(tmpdir(), 'herald-lock-'));
    try {
      for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(dir, f));
      for (const pkg of readdirSync(join(ROOT, 'packages'))) {
        mkdirSync(join(dir, 'packages', pkg), { recursive: true });
        for (const f of ['package.json', 'binding.gyp']) {
          if (existsSync(join(ROOT, 'packages', pkg, f))) copyFileSync(join(ROOT, 'packages', pkg, f), join(dir, 'packages', pkg, f));
        }
      }
      const result = await exec('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], {}, dir);
      expect(result.code, result.stderr).to.equal(0);
      expect(readFileSync(join(dir, 'package-lock.json'), 'utf8')).to.equal(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('npm start on an up-to-date tree starts the worker without rebuilding anything', async () => {
    const outputs = [
      'packages/server/dist/bin/herald-worker.js',
      'packages/client/dist/browser/herald.js',
      'packages/server/dist/web/app.js',
      'packages/server/dist/web/index.html',
      'packages/balancer/build/Release/herald_relay.node',
    ].map((f) => join(ROOT, f)).filter((f) => existsSync(f));
    expect(outputs.length).to.be.at.least(4);
    const before = outputs.map((f) => statSync(f).mtimeMs);
    const start = npmRun('start', { PORT: '0', HOST: '127.0.0.1' });
    try {
      await start.waitForLine(listening, 60_000);
    } finally {
      await stopGroup(start);
    }
    expect(outputs.map((f) => statSync(f).mtimeMs)).to.deep.equal(before);
  });

  it('npm run dev restarts the worker when its compiled code changes', async () => {
    const dev = npmRun('dev', { PORT: '0', HOST: '127.0.0.1' });
    try {
      const first = JSON.parse(await dev.waitForLine(listening, 60_000)) as { pid: number };
      // What tsc -b -w does when a source file changes: it rewrites the file in dist/.
      const compiled = join(ROOT, 'packages/server/dist/worker.js');
      const now = new Date();
      utimesSync(compiled, now, now);
      const second = JSON.parse(await dev.waitForLine((l) => listening(l) && (JSON.parse(l) as { pid: number }).pid !== first.pid, 30_000)) as { pid: number };
      expect(second.pid).to.not.equal(first.pid);
    } finally {
      await stopGroup(dev);
    }
  });

  it('a taken port: herald-worker prints one line naming PORT=0 and exits 1', async () => {
    const { port, server } = await holdPort();
    try {
      const result = await exec(process.execPath, [WORKER_BIN], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' });
      expect(result.code).to.equal(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).to.have.lengthOf(1);
      expect(lines[0]).to.include(`127.0.0.1:${port}`).and.include('EADDRINUSE').and.include('PORT=0');
      expect(result.stdout).to.equal('');
    } finally {
      server.close();
    }
  });

  it('a taken port: herald-balancer ends with one line naming PORT=0 and exits 1', async () => {
    const { port, server } = await holdPort();
    try {
      const bin = join(ROOT, 'packages/balancer/dist/bin/herald-balancer.js');
      const result = await exec(process.execPath, [bin], { PORT: String(port), HOST: '127.0.0.1', HERALD_WORKERS: '127.0.0.1:9', LOG_LEVEL: 'error' });
      expect(result.code).to.equal(1);
      const lines = `${result.stdout}${result.stderr}`.trim().split('\n');
      expect(lines, lines.join('\n')).to.have.lengthOf(1);
      expect(lines[0]).to.include(`127.0.0.1:${port}`).and.include('EADDRINUSE').and.include('PORT=0');
    } finally {
      server.close();
    }
  });

  describe('herald-token', () => {
    let worker: WorkerProcess | undefined;
    afterEach(async () => {
      await worker?.stop();
      worker = undefined;
    });

    it('mints a token the worker accepts with HERALD_AUTH=required, with its channels and publish claims', async () => {
      worker = await startWorker({ HERALD_AUTH: 'required', HERALD_JWT_SECRET: TEST_SECRET });
      const minted = await exec(process.execPath, [TOKEN_BIN, '--sub', 'alice', '--channels', 'room:*', '--publish', 'room:1', '--ttl', '10m'], { HERALD_JWT_SECRET: TEST_SECRET });
      expect(minted.code, minted.stderr).to.equal(0);
      const token = minted.stdout.trim();
      expect(token.split('.')).to.have.lengthOf(3);
      const client = await TestClient.open(`${worker.wsUrl}/ws?token=${token}`);
      try {
        expect(client.welcome!.user).to.equal('alice');
        expect((await client.request({ type: 'subscribe', channel: 'room:2' })).type).to.equal('ack');
        expect((await client.request({ type: 'subscribe', channel: 'other:1' })).code).to.equal('forbidden');
        expect((await client.request({ type: 'publish', channel: 'room:2', data: 1 })).code).to.equal('forbidden');
        expect((await client.request({ type: 'publish', channel: 'room:1', data: 1 })).type).to.equal('ack');
      } finally {
        await client.close();
      }
      // --ttl sets exp.
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
      expect(claims.exp - claims.iat).to.equal(600);
    });

    it('a token for another secret is refused before the upgrade (401), and usage errors are one line with exit 2', async () => {
      worker = await startWorker({ HERALD_AUTH: 'required', HERALD_JWT_SECRET: TEST_SECRET });
      const other = await exec(process.execPath, [TOKEN_BIN, '--sub', 'mallory'], { HERALD_JWT_SECRET: 'another-secret-another-secret-another-1' });
      const refused = await TestClient.connect(`${worker.wsUrl}/ws`, { headers: { authorization: `Bearer ${other.stdout.trim()}` } }).then(
        () => 0,
        (error: { status?: number }) => error.status,
      );
      expect(refused).to.equal(401);
      for (const [args, env, text] of [
        [['--sub', 'x'], { HERALD_JWT_SECRET: '' }, 'HERALD_JWT_SECRET is not set'],
        [['--sub', 'x'], { HERALD_JWT_SECRET: 'short' }, 'at least 32 bytes'],
        [[], { HERALD_JWT_SECRET: TEST_SECRET }, '--sub is required'],
        [['--sub', 'x', '--ttl', '5 minutes'], { HERALD_JWT_SECRET: TEST_SECRET }, '--ttl'],
        [['--sub', 'x', '--bogus'], { HERALD_JWT_SECRET: TEST_SECRET }, 'bogus'],
      ] as Array<[string[], NodeJS.ProcessEnv, string]>) {
        const result = await exec(process.execPath, [TOKEN_BIN, ...args], env);
        expect(result.code, args.join(' ')).to.equal(2);
        expect(result.stderr.trim().split('\n'), args.join(' ')).to.have.lengthOf(1);
        expect(result.stderr).to.include(text);
      }
    });
  });
});
