import { expect } from 'chai';
import { once } from 'node:events';
import { copyFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { PLAIN_HTTP_ON_TLS_MESSAGE } from '@herald/shared';
import {
  TestClient,
  createTestCa,
  eventually,
  heraldClientRoundTrip,
  httpsGet,
  spawnChild,
  startWorker,
  type TestCa,
  type TestCert,
  type WorkerProcess,
} from './helpers/index.js';
import { BALANCER_BIN, startBalancer, type BalancerProcess, type BalancerStatusBody } from './helpers/balancer.js';

type TlsStatus = BalancerStatusBody & { tls: { enabled: boolean; dataPlane?: string; reloads?: number } };

// herald-balancer terminating TLS (HERALD_TLS_CERT / HERALD_TLS_KEY) in front of plain-HTTP
// workers, with a CA and certificates made by openssl for this run.
describe('herald-balancer with TLS (balancer and worker processes, openssl test CA)', function () {
  this.timeout(30_000);

  let ca: TestCa;
  let cert: TestCert;
  let next: TestCert;
  let workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;
  let fake: Server | undefined;

  before(() => {
    ca = createTestCa();
    cert = ca.issue('balancer');
    next = ca.issue('balancer-next');
  });
  after(() => ca?.remove());
  afterEach(async () => {
    await balancer?.stop('SIGKILL');
    balancer = undefined;
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    if (fake) await new Promise((resolve) => fake!.close(resolve));
    fake = undefined;
  });

  const status = async () => JSON.parse((await httpsGet(`${balancer!.url}/balancer/status`, ca.ca)).body) as TlsStatus;

  it('serves wss to clients, talks plain HTTP to two workers, and keeps TLS tunnels on the JS data plane', async () => {
    workers = await Promise.all([startWorker(), startWorker()]);
    balancer = await startBalancer({
      HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
      HERALD_TLS_CERT: cert.certFile,
      HERALD_TLS_KEY: cert.keyFile,
    });
    expect(balancer.wsUrl).to.match(/^wss:/);
    await eventually(async () => expect((await status()).healthy).to.equal(2));

    const echo = new WebSocket(`${balancer.wsUrl}/echo?sid=a`, { ca: ca.ca });
    await once(echo, 'open');
    echo.send(Buffer.from([7, 8, 9]));
    const [data, binary] = (await once(echo, 'message')) as [Buffer, boolean];
    expect([[...data], binary]).to.deep.equal([[7, 8, 9], true]);

    const { node, received } = await heraldClientRoundTrip(`${balancer.wsUrl}/ws?sid=b`, ca.ca, 'via balancer');
    expect(workers.map((w) => w.node)).to.include(node);
    expect(received).to.deep.equal([{ text: 'via balancer' }]);

    // The relay is built here (or not): either way a TLS tunnel is Node's to carry.
    const s = await status();
    expect(s.relay).to.equal('js');
    expect(s.tls).to.include({ enabled: true, dataPlane: 'js', reloads: 0 });
    // The echo tunnel; the client's closes on its own time.
    await eventually(async () => expect((await status()).connections.tunnels).to.equal(1));
    expect(balancer.child.lines.some((l) => l.includes('TLS tunnels stay on stream pipes'))).to.equal(true);
    echo.close();
    await once(echo, 'close');

    // Plain HTTP on the TLS port is told so (400 bad_request), and the port goes on serving TLS.
    const plain = await fetch(`http://127.0.0.1:${balancer.port}/balancer/status`);
    expect(plain.status).to.equal(400);
    expect(await plain.json()).to.deep.equal({ error: { code: 'bad_request', message: PLAIN_HTTP_ON_TLS_MESSAGE } });
    expect((await status()).healthy).to.equal(2);
  });

  it('tells a plain-HTTP worker the client came over https (X-Forwarded-Proto)', async () => {
    const seen: IncomingHttpHeaders[] = [];
    fake = createServer((req, res) => {
      if (req.url !== '/readyz') seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true}');
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    balancer = await startBalancer({
      HERALD_WORKERS: `127.0.0.1:${(fake.address() as AddressInfo).port}`,
      HERALD_TLS_CERT: cert.certFile,
      HERALD_TLS_KEY: cert.keyFile,
    });
    await eventually(async () => expect((await status()).healthy).to.equal(1));
    expect((await httpsGet(`${balancer.url}/page`, ca.ca, { 'x-forwarded-proto': 'http' })).status).to.equal(200);
    expect(seen).to.have.length(1);
    // The client is not a trusted proxy: its own X-Forwarded-Proto is replaced.
    expect(seen[0]!['x-forwarded-proto']).to.equal('https');
  });

  it('reloads the certificate on SIGHUP: a wss tunnel opened before keeps exchanging messages, a new connection sees the new certificate', async () => {
    const certFile = join(ca.dir, 'reload-balancer.pem');
    const keyFile = join(ca.dir, 'reload-balancer.key');
    copyFileSync(cert.certFile, certFile);
    copyFileSync(cert.keyFile, keyFile);
    workers = [await startWorker()];
    balancer = await startBalancer({ HERALD_WORKERS: `127.0.0.1:${workers[0]!.port}`, HERALD_TLS_CERT: certFile, HERALD_TLS_KEY: keyFile });
    await eventually(async () => expect((await status()).healthy).to.equal(1));
    const before = await TestClient.open(`${balancer.wsUrl}/ws?user=before`, { ca: ca.ca });
    expect((await before.request({ type: 'subscribe', channel: 'room:reload' })).type).to.equal('ack');
    expect((await httpsGet(`${balancer.url}/balancer/status`, ca.ca)).serial).to.equal(cert.serial);

    copyFileSync(next.certFile, certFile);
    copyFileSync(next.keyFile, keyFile);
    balancer.child.proc.kill('SIGHUP');
    await balancer.child.waitForLine((l) => l.includes('TLS certificate reloaded'));
    const answer = await httpsGet(`${balancer.url}/balancer/status`, ca.ca);
    expect(answer.serial).to.equal(next.serial);
    const s = JSON.parse(answer.body) as TlsStatus;
    expect(s.tls.reloads).to.equal(1);
    expect(s.connections.tunnels).to.equal(1);

    // The tunnel opened before the reload: still the same TLS session, still moving frames both ways.
    for (const text of ['one', 'two']) {
      expect((await before.request({ type: 'publish', channel: 'room:reload', data: text })).type).to.equal('ack');
      await before.waitFrame((f) => f.type === 'message' && f.data === text);
    }
    const after = await TestClient.open(`${balancer.wsUrl}/ws?user=after`, { ca: ca.ca });
    expect((await after.request({ type: 'publish', channel: 'room:reload', data: 'three' })).type).to.equal('ack');
    await before.waitFrame((f) => f.type === 'message' && f.data === 'three');
    await after.close();
    await before.close();
    expect(balancer.child.proc.exitCode).to.equal(null);
  });

  for (const [label, env, expected] of [
    ['HERALD_TLS_KEY without HERALD_TLS_CERT', () => ({ HERALD_TLS_KEY: cert.keyFile }), /HERALD_TLS_KEY: HERALD_TLS_CERT and HERALD_TLS_KEY go together/],
    ['HERALD_RELAY=native with TLS', () => ({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.keyFile, HERALD_RELAY: 'native' }), /HERALD_RELAY: native cannot carry TLS tunnels/],
    ['a key that does not match the certificate', () => ({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: next.keyFile }), /HERALD_TLS_CERT .* HERALD_TLS_KEY .*(key values mismatch|KEY_VALUES_MISMATCH)/],
  ] as const) {
    it(`exits 1 with one line for ${label}`, async () => {
      const child = spawnChild('balancer', process.execPath, [BALANCER_BIN], { PORT: '0', HOST: '127.0.0.1', HERALD_WORKERS: '127.0.0.1:1', ...env() });
      const { code } = await child.exited;
      expect(code).to.equal(1);
      expect(child.lines).to.have.length(1);
      expect(child.lines[0]).to.match(/^herald-balancer: /).and.to.match(expected);
    });
  }
});
