import { expect } from 'chai';
import { writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { spawnChild, startRedis, startWorker, TestClient, eventually, type WorkerProcess } from './helpers/index.js';
import { WORKER_BIN } from './helpers/worker.js';

const run = promisify(execFile);

const BIN_LINK = fileURLToPath(new URL('../node_modules/.bin/herald-worker', import.meta.url));
const RESOLVE_LOG = fileURLToPath(new URL('./helpers/resolve-log.mjs', import.meta.url));

describe('worker process: configuration, bin and graceful shutdown', () => {
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });

  const failsWith = async (env: NodeJS.ProcessEnv, pattern: RegExp) => {
    const child = spawnChild('worker', process.execPath, [WORKER_BIN], { PORT: '0', ...env });
    const { code } = await child.exited;
    expect(code).to.equal(1);
    expect(child.lines.join('\n')).to.match(pattern);
  };

  it('exits 1 with a clear message on invalid configuration', async () => {
    await failsWith({ PORT: 'eighty' }, /invalid environment: PORT/);
    await failsWith({ HERALD_MAX_MESSAGE_BYTES: '-5' }, /HERALD_MAX_MESSAGE_BYTES/);
    await failsWith({ HERALD_HEARTBEAT_MS: '1.5' }, /HERALD_HEARTBEAT_MS/);
    await failsWith({ REDIS_URL: 'not a url' }, /REDIS_URL/);
    await failsWith({ NODE_ID: 'has space' }, /NODE_ID/);
    await failsWith({ HERALD_TRUSTED_PROXIES: '10.0.0.0/8,not-an-ip' }, /HERALD_TRUSTED_PROXIES.*not-an-ip/);
    const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
    writeFileSync(join(dir, 'bad.json'), '{"namespaces":{"chat":{"historySize":"lots"}}}');
    await failsWith({ HERALD_CONFIG: join(dir, 'bad.json') }, /HERALD_CONFIG .*namespaces\.chat\.historySize/);
    await failsWith({ HERALD_CONFIG: join(dir, 'missing.json') }, /HERALD_CONFIG .*ENOENT/);
  });

  it('applies namespace options from HERALD_CONFIG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ namespaces: { news: { clientPublish: false }, '': { historySize: 0 } } }));
    const w = await startWorker({ HERALD_CONFIG: join(dir, 'ok.json'), NODE_ID: 'cfg-1' });
    workers.push(w);
    const c = await TestClient.open(`${w.wsUrl}/ws`);
    expect(c.welcome).to.deep.include({ node: 'cfg-1' });
    expect(await c.request({ type: 'publish', channel: 'news:1', data: 1 })).to.deep.include({ code: 'forbidden' });
    expect(await c.request({ type: 'publish', channel: 'lobby', data: 1 })).to.not.have.property('offset');
    await c.close();
  });

  it('loads ioredis only with REDIS_URL (a memory-only worker never imports the Redis backends)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-resolve-'));
    /** Module URLs the worker resolved while starting, serving a publish and stopping. */
    const resolvedBy = async (name: string, env: NodeJS.ProcessEnv) => {
      const log = join(dir, `${name}.log`);
      writeFileSync(log, '');
      const w = await startWorker({ NODE_OPTIONS: `--import ${RESOLVE_LOG}`, HERALD_TEST_RESOLVE_LOG: log, ...env });
      workers.push(w);
      const c = await TestClient.open(`${w.wsUrl}/ws`);
      await c.request({ type: 'subscribe', channel: 'room:1' });
      expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).to.deep.include({ type: 'ack' });
      await c.close();
      expect((await w.stop('SIGTERM')).code).to.equal(0);
      return readFileSync(log, 'utf8').split('\n');
    };
    const memory = await resolvedBy('memory', {});
    expect(memory.some((u) => u.endsWith('/memory-broker.js')), 'the hook saw the worker load').to.equal(true);
    // @herald/shared's redis-keys.js is the key layout only (no client): the worker's own redis-*.js files are what need ioredis.
    expect(memory.filter((u) => /ioredis|\/server\/dist\/redis-[a-z-]+\.js$/.test(u))).to.deep.equal([]);
    const redis = await startRedis();
    try {
      const cluster = await resolvedBy('redis', { REDIS_URL: redis.url });
      expect(cluster.some((u) => u.includes('/ioredis/'))).to.equal(true);
      expect(cluster.some((u) => u.endsWith('/redis-backends.js'))).to.equal(true);
    } finally {
      await redis.stop();
    }
  });

  it('keeps ioredis out of the package entry: `@herald/server` does not load it, `@herald/server/redis` does', async () => {
    /** Whether importing `specifier` in a fresh Node loads a module from ioredis. */
    const loadsIoredis = async (specifier: string) => {
      const script = `import '${specifier}'; import { createRequire } from 'node:module'; console.log(Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/ioredis/')))`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('..', import.meta.url)) });
      return stdout.trim();
    };
    expect(await loadsIoredis('@herald/server')).to.equal('false');
    expect(await loadsIoredis('@herald/server/redis')).to.equal('true');
  });

  it('runs as the herald-worker package bin', async () => {
    const child = spawnChild('bin', BIN_LINK, [], { PORT: '0', HOST: '127.0.0.1' });
    const line = await child.waitForLine((l) => l.includes('"msg":"listening"'));
    const { port } = JSON.parse(line);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    expect((await child.stop('SIGINT')).code).to.equal(0);
  });

  it('drains on SIGTERM: readyz 503, upgrades refused, every client gets 1001 in batches, exit 0', async () => {
    const w = await startWorker({ HERALD_DRAIN_MS: '3000' });
    workers.push(w);
    expect((await fetch(`${w.url}/readyz`)).status).to.equal(200);
    const clients = await Promise.all(Array.from({ length: 30 }, () => TestClient.open(`${w.wsUrl}/ws`)));
    const echo = await TestClient.connect(`${w.wsUrl}/echo`);
    const closeTimes: number[] = [];
    const codes = Promise.all([...clients, echo].map((c) => c.closed.then((r) => (closeTimes.push(Date.now()), r.code))));
    const started = Date.now();
    w.child.proc.kill('SIGTERM');
    await eventually(async () => {
      const res = await fetch(`${w.url}/readyz`);
      expect(res.status).to.equal(503);
      expect(await res.json()).to.deep.include({ ready: false, reason: 'draining' });
    });
    const refused = await TestClient.connect(`${w.wsUrl}/ws`).catch((e) => e);
    expect(refused.status).to.equal(503);
    expect(await codes).to.deep.equal(Array(31).fill(1001));
    const { code } = await w.child.exited;
    expect(code).to.equal(0);
    expect(Date.now() - started).to.be.below(3000 + 1000);
    // Paced: the closes were spread out, not sent all at once.
    expect(Math.max(...closeTimes) - Math.min(...closeTimes)).to.be.above(300);
  });
});
