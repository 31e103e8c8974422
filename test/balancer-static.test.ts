import { expect } from 'chai';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pickWorker } from '@herald/balancer';
import { TestClient, eventually, startWorker, type WorkerProcess } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';

/** GET through the balancer on a fresh connection; returns status, headers and parsed body. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode!, headers: res.headers, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('balancer (static list, 3 workers)', function () {
  this.timeout(60_000);

  let workers: WorkerProcess[] = [];
  const balancers: BalancerProcess[] = [];
  const servers: http.Server[] = [];
  const address = (w: WorkerProcess) => `127.0.0.1:${w.port}`;

  async function balance(env: NodeJS.ProcessEnv = {}, list = workers.map(address)): Promise<BalancerProcess> {
    const b = await startBalancer({ HERALD_WORKERS: list.join(','), ...env });
    balancers.push(b);
    return b;
  }

  async function healthy(b: BalancerProcess, n: number): Promise<void> {
    await eventually(async () => expect((await b.status()).healthy).to.equal(n), { timeout: 10_000 });
  }

  beforeEach(async () => {
    workers = await Promise.all([startWorker(), startWorker(), startWorker()]);
  });

  afterEach(async () => {
    await Promise.all(balancers.splice(0).map((b) => b.stop('SIGKILL')));
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('serves /balancer/status with workers, health and connection counts', async () => {
    const b = await balance();
    await healthy(b, 3);
    const c = await TestClient.open(`${b.wsUrl}/ws?sid=status`);
    const res = await get(b.port, '/balancer/status');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^application\/json/);
    const body = res.body;
    expect(body).to.include({ status: 'ok', sticky: 'query:sid', healthy: 3 });
    expect(body.discovery).to.deep.equal(['static']);
    expect(body.connections.tunnels).to.equal(1);
    expect(body.workers).to.have.length(3);
    const owner = body.workers.find((w: any) => w.connections === 1);
    expect(owner.address).to.equal(pickWorker('status', workers.map(address)));
    for (const w of body.workers) {
      expect(w).to.include.all.keys('address', 'node', 'state', 'healthy', 'connections', 'requests', 'sources', 'lastCheck', 'lastError');
      expect(w.state).to.equal('healthy');
      expect(w.sources).to.deep.equal(['static']);
    }
    await c.close();
  });

  it('routes by ?sid= exactly as the rendezvous function says, HTTP and WebSocket alike', async () => {
    const b = await balance();
    await healthy(b, 3);
    const byAddress = new Map(workers.map((w) => [address(w), w.node]));
    for (const sid of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const expected = byAddress.get(pickWorker(sid, workers.map(address))!);
      expect((await get(b.port, `/readyz?sid=${sid}`)).body.node, sid).to.equal(expected);
      const c = await TestClient.open(`${b.wsUrl}/ws?sid=${sid}`);
      expect(c.welcome!.node, sid).to.equal(expected);
      await c.close();
    }
  });

  it('without a key, hashes the client address (X-Forwarded-For ignored from untrusted peers)', async () => {
    const b = await balance();
    await healthy(b, 3);
    const nodes = new Set<string>();
    for (let i = 0; i < 12; i++) nodes.add((await get(b.port, '/readyz', { 'x-forwarded-for': `198.51.100.${i}` })).body.node);
    expect(nodes.size).to.equal(1);
    const expected = workers.find((w) => address(w) === pickWorker('127.0.0.1', workers.map(address)))!.node;
    expect([...nodes][0]).to.equal(expected);
  });

  it('ip mode behind a trusted proxy: X-Forwarded-For picks the worker', async () => {
    const b = await balance({ HERALD_STICKY: 'ip', HERALD_TRUSTED_PROXIES: 'loopback' });
    await healthy(b, 3);
    const nodes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const ip = `198.51.100.${i}`;
      const first = (await get(b.port, '/readyz?sid=ignored', { 'x-forwarded-for': ip })).body.node;
      const again = (await get(b.port, '/readyz?sid=other', { 'x-forwarded-for': `10.9.9.9, ${ip}` })).body.node;
      expect(again, ip).to.equal(first);
      nodes.add(first);
    }
    expect(nodes.size).to.equal(3);
  });

  it('header mode: the named header is the key', async () => {
    const b = await balance({ HERALD_STICKY: 'header:x-session' });
    await healthy(b, 3);
    const nodes = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const c1 = await TestClient.open(`${b.wsUrl}/ws`, { headers: { 'x-session': `s${i}` } });
      const c2 = await TestClient.open(`${b.wsUrl}/ws?sid=zzz`, { headers: { 'x-session': `s${i}` } });
      expect(c2.welcome!.node).to.equal(c1.welcome!.node);
      nodes.add(c1.welcome!.node);
      await Promise.all([c1.close(), c2.close()]);
    }
    expect(nodes.size).to.equal(3);
  });

  it('cookie mode: a first HTTP visit gets the cookie, and the upgrade carrying it lands on the same worker', async () => {
    const b = await balance({ HERALD_STICKY: 'cookie:hsid' });
    await healthy(b, 3);
    const nodes = new Set<string>();
    for (let i = 0; i < 15; i++) {
      const first = await get(b.port, '/readyz');
      const cookie = (first.headers['set-cookie'] ?? [])[0];
      expect(cookie).to.match(/^hsid=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax$/);
      const pair = cookie!.split(';')[0]!;
      const c = await TestClient.open(`${b.wsUrl}/ws`, { headers: { cookie: `other=1; ${pair}` } });
      expect(c.welcome!.node).to.equal(first.body.node);
      const later = await get(b.port, '/readyz', { cookie: pair });
      expect(later.headers['set-cookie']).to.equal(undefined);
      expect(later.body.node).to.equal(first.body.node);
      nodes.add(first.body.node);
      await c.close();
    }
    expect(nodes.size).to.be.greaterThan(1);
  });

  it('sets X-Forwarded-For/-Proto/-Host, trusting incoming ones only from trusted proxies', async () => {
    // A plain HTTP upstream that reports the headers it received (the worker does not expose them).
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = http.createServer((req, res) => {
      if (req.url !== '/readyz') seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ready":true}');
    });
    servers.push(upstream);
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const target = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const plain = await balance({}, [target]);
    const trusting = await balance({ HERALD_TRUSTED_PROXIES: '127.0.0.0/8' }, [target]);
    await Promise.all([healthy(plain, 1), healthy(trusting, 1)]);
    await get(plain.port, '/x', { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', host: 'example.test' });
    expect(seen[0]).to.include({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'example.test' });
    await get(trusting.port, '/x', { 'x-forwarded-for': '203.0.113.5', 'x-forwarded-proto': 'https', host: 'example.test' });
    expect(seen[1]).to.include({ 'x-forwarded-for': '203.0.113.5, 127.0.0.1', 'x-forwarded-proto': 'https' });
  });

  it('retries a refused HTTP connection on the next worker and marks the dead one down (passive)', async () => {
    const b = await balance({ HERALD_HEALTH_INTERVAL_MS: '600000' });
    await healthy(b, 3);
    const victim = workers[0]!;
    const sid = Array.from({ length: 100 }, (_, i) => `r${i}`).find((k) => pickWorker(k, workers.map(address)) === address(victim))!;
    await victim.stop('SIGKILL');
    const res = await get(b.port, `/readyz?sid=${sid}`);
    expect(res.status).to.equal(200);
    expect(res.body.node).to.not.equal(victim.node);
    const entry = (await b.status()).workers.find((w) => w.address === address(victim))!;
    expect(entry).to.include({ state: 'unhealthy', healthy: false, lastError: 'ECONNREFUSED' });
  });

  it('answers 502 when the chosen worker fails and retries are off, then 503 when no worker is left', async () => {
    const b = await balance({ HERALD_HEALTH_INTERVAL_MS: '600000', HERALD_RETRIES: '0' });
    await healthy(b, 3);
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    const first = await get(b.port, '/readyz?sid=x');
    expect(first.status).to.equal(502);
    expect(first.body.error).to.include({ code: 'bad_gateway' });
    // Passive marking took that worker out; the others go the same way on their first failure.
    for (let i = 0; i < 10 && (await b.status()).healthy > 0; i++) await get(b.port, `/readyz?sid=y${i}`);
    const last = await get(b.port, '/readyz?sid=x');
    expect(last.status).to.equal(503);
    expect(last.body.error).to.include({ code: 'no_worker' });
    const ws = (await TestClient.connect(`${b.wsUrl}/ws?sid=x`).catch((e: unknown) => e)) as { status?: number };
    expect(ws.status).to.equal(503);
    expect(b.child.proc.exitCode).to.equal(null);
  });

  it('sees a draining worker through /readyz: no new upgrades for it, clients reconnect elsewhere', async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    workers = await Promise.all([0, 1, 2].map(() => startWorker({ HERALD_DRAIN_MS: '3000' })));
    const b = await balance();
    await healthy(b, 3);
    // Ten clients on one worker: its drain spreads their 1001s over half of HERALD_DRAIN_MS, long
    // enough for the balancer to see `/readyz` say draining before the process exits.
    const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.open(`${b.wsUrl}/ws?sid=drain`)));
    const draining = workers.find((w) => w.node === clients[0]!.welcome!.node)!;
    expect(clients.every((c) => c.welcome!.node === draining.node)).to.equal(true);
    const exited = draining.stop('SIGTERM');
    await eventually(async () => {
      const w = (await b.status()).workers.find((x) => x.address === address(draining))!;
      expect(w).to.include({ state: 'draining', healthy: false, lastError: 'status 503: draining' });
    });
    for (const c of clients) expect((await c.closed).code).to.equal(1001);
    const again = await TestClient.open(`${b.wsUrl}/ws?sid=drain`);
    expect(again.welcome!.node).to.not.equal(draining.node);
    await again.close();
    expect((await exited).code).to.equal(0);
  });

  it('takes workers out by active checks alone and brings them back after `rise` passes', async () => {
    const b = await balance({ HERALD_HEALTH_RISE: '3', HERALD_HEALTH_FALL: '2' });
    await healthy(b, 3);
    const paused = workers[2]!;
    process.kill(paused.child.pid, 'SIGSTOP');
    try {
      await eventually(async () => {
        const w = (await b.status()).workers.find((x) => x.address === address(paused))!;
        expect(w.state).to.equal('unhealthy');
        expect(w.lastError).to.match(/timeout/);
      }, { timeout: 10_000 });
      for (let i = 0; i < 20; i++) expect((await get(b.port, `/readyz?sid=k${i}`)).body.node).to.not.equal(paused.node);
    } finally {
      process.kill(paused.child.pid, 'SIGCONT');
    }
    await healthy(b, 3);
    const line = b.child.lines.find((l) => l.includes('"to":"healthy"') && l.includes(address(paused)) && l.includes('"from":"unhealthy"'));
    expect(line).to.be.a('string');
  });
});
