import { expect } from 'chai';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnChild, startWorker, TestClient, hsToken, testKeyPair, TEST_SECRET, type WorkerProcess } from './helpers/index.js';
import { WORKER_BIN } from './helpers/worker.js';

describe('auth (worker process)', () => {
  let worker: WorkerProcess | undefined;
  let dir: string;
  const clients: TestClient[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-auth-'));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker?.stop();
    worker = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('reads HERALD_JWT_PUBLIC_KEY and HERALD_JWKS_FILE and never logs a token', async () => {
    const rsa = await testKeyPair('RS256');
    const ec = await testKeyPair('ES256');
    await writeFile(join(dir, 'key.pem'), rsa.publicPem);
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [ec.publicJwk] }));
    worker = await startWorker({
      LOG_LEVEL: 'trace',
      HERALD_AUTH: 'required',
      HERALD_JWT_PUBLIC_KEY: join(dir, 'key.pem'),
      HERALD_JWKS_FILE: join(dir, 'jwks.json'),
      HERALD_AUTH_TIMEOUT_MS: '500',
    });
    const good = [await rsa.sign('rita'), await ec.sign('eric')];
    const bad = [await hsToken('mallory'), `${good[0]!.slice(0, -10)}AAAAAAAAAA`];
    for (const t of good) clients.push(await TestClient.open(`${worker.wsUrl}/ws?token=${t}`));
    expect(clients.map((c) => c.welcome!.user)).to.deep.equal(['rita', 'eric']);
    for (const t of bad) {
      const viaQuery = await TestClient.connect(`${worker.wsUrl}/ws?token=${t}`);
      expect((await viaQuery.closed).code).to.equal(4001);
      const viaHeader = await TestClient.connect(`${worker.wsUrl}/ws`, { headers: { Authorization: `Bearer ${t}` } }).then(() => 101, (e) => e.status);
      expect(viaHeader).to.equal(401);
      const late = await TestClient.connect(`${worker.wsUrl}/ws`);
      late.send({ type: 'auth', token: t });
      expect((await late.closed).code).to.equal(4001);
    }
    // An HTTP request with a token in the query and a failing API call must not log it either.
    await fetch(`${worker.url}/nope?token=${good[0]}`);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker.stop();
    const log = worker.child.lines.join('\n');
    expect(log).to.include('upgrade refused');
    for (const t of [...good, ...bad]) {
      expect(log).to.not.include(t.split('.')[2]!.slice(0, 20));
      expect(log).to.not.include(t.split('.')[1]!.slice(0, 20));
    }
    worker = undefined;
  });

  it('accepts HS256 from HERALD_JWT_SECRET and honours HERALD_ALLOWED_ORIGINS', async () => {
    worker = await startWorker({ HERALD_AUTH: 'optional', HERALD_JWT_SECRET: TEST_SECRET, HERALD_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:3000' });
    const token = await hsToken('alice');
    const ok = await TestClient.open(`${worker.wsUrl}/ws`, { headers: { Authorization: `Bearer ${token}` }, origin: 'https://app.example.com' });
    clients.push(ok);
    expect(ok.welcome!.user).to.equal('alice');
    const status = await TestClient.connect(`${worker.wsUrl}/ws`, { origin: 'https://app.example.com.evil.com' }).then(() => 101, (e) => e.status);
    expect(status).to.equal(403);
  });

  it('refuses to start with an unusable auth configuration', async () => {
    const run = async (env: Record<string, string>) => {
      const child = spawnChild('worker', process.execPath, [WORKER_BIN], { PORT: '0', HOST: '127.0.0.1', ...env });
      const { code } = await child.exited;
      return { code, out: child.lines.join('\n') };
    };
    expect(await run({ HERALD_AUTH: 'required' })).to.deep.include({ code: 1 });
    expect((await run({ HERALD_AUTH: 'required' })).out).to.match(/HERALD_JWT_SECRET/);
    expect((await run({ HERALD_AUTH: 'optional', HERALD_JWT_SECRET: 'short' })).out).to.match(/32 bytes/);
    expect((await run({ HERALD_AUTH: 'required', HERALD_JWT_PUBLIC_KEY: join(dir, 'missing.pem') })).out).to.match(/HERALD_JWT_PUBLIC_KEY/);
    expect((await run({ HERALD_ALLOWED_ORIGINS: 'app.example.com' })).out).to.match(/HERALD_ALLOWED_ORIGINS/);
    expect((await run({ HERALD_AUTH: 'sometimes' })).code).to.equal(1);
  });
});
