import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import {
  TestClient,
  createTestCa,
  hasNginx,
  heraldClientRoundTrip,
  httpsGet,
  startNginx,
  startWorker,
  type TestCa,
  type TestCert,
  type TestNginx,
  type WorkerProcess,
} from './helpers/index.js';

// Every test goes through the shipped config's TLS server (`listen 443 ssl`) with a CA and a
// certificate made by openssl for this run; the plain-HTTP server only answers health checks
// and redirects.
describe('nginx (real nginx, shipped config with TLS, 3 workers)', function () {
  this.timeout(60_000);

  let workers: WorkerProcess[] = [];
  let nginx: TestNginx | undefined;
  let ca: TestCa;
  let cert: TestCert;
  let port: number;

  before(function () {
    if (!hasNginx()) this.skip(); // the nginx Debian package is not installed here
    ca = createTestCa();
    cert = ca.issue('nginx');
  });

  after(() => ca?.remove());

  beforeEach(async () => {
    workers = await Promise.all([startWorker({ HERALD_DRAIN_MS: '2000' }), startWorker({ HERALD_DRAIN_MS: '2000' }), startWorker({ HERALD_DRAIN_MS: '2000' })]);
    nginx = await startNginx(workers.map((w) => `127.0.0.1:${w.port}`), cert);
    port = nginx.httpsPort;
  });

  afterEach(async () => {
    await nginx?.stop();
    nginx = undefined;
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  });

  const wsUrl = (path: string) => `wss://127.0.0.1:${port}${path}`;
  const open = (path: string) => TestClient.open(wsUrl(path), { ca: ca.ca });

  it('proxies WebSocket upgrades (text and binary stay as they are)', async () => {
    const ws = new WebSocket(wsUrl('/echo?sid=u'), { ca: ca.ca });
    ws.on('error', () => undefined);
    await once(ws, 'open');
    ws.send('hello nginx');
    const [text, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
    expect([text.toString(), isBinary]).to.deep.equal(['hello nginx', false]);
    ws.send(Buffer.from([1, 2, 3]));
    const [bin, binFlag] = (await once(ws, 'message')) as [Buffer, boolean];
    expect([[...bin], binFlag]).to.deep.equal([[1, 2, 3], true]);
    ws.close();
    await once(ws, 'close');
    const c = await open('/ws?sid=u');
    expect(workers.map((w) => w.node)).to.include(c.welcome!.node);
    await c.close();
  });

  it('carries @herald/client in Node over wss (its ws constructor trusts the test CA)', async () => {
    const { node, received } = await heraldClientRoundTrip(wsUrl('/ws?sid=client'), ca.ca, 'via nginx');
    expect(workers.map((w) => w.node)).to.include(node);
    expect(received).to.deep.equal([{ text: 'via nginx' }]);
  });

  it('answers health checks on plain HTTP and redirects everything else to https with 308', async () => {
    const http = `http://127.0.0.1:${nginx!.httpPort}`;
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${http}${path}`, { redirect: 'manual' });
      expect(res.status, path).to.equal(200);
      expect(((await res.json()) as { node: string }).node, path).to.be.oneOf(workers.map((w) => w.node));
    }
    for (const path of ['/', '/client.js', '/api/publish?x=1', '/readyz/more']) {
      const res = await fetch(`${http}${path}`, { redirect: 'manual', method: path.startsWith('/api') ? 'POST' : 'GET' });
      expect(res.status, path).to.equal(308);
      expect(res.headers.get('location'), path).to.equal(`https://127.0.0.1${path}`);
    }
    // A ws:// upgrade on port 80 is redirected too, never proxied in clear text.
    const ws = new WebSocket(`ws://127.0.0.1:${nginx!.httpPort}/echo`);
    ws.on('error', () => undefined);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).to.equal(308);
    ws.terminate();
  });

  it('speaks TLS 1.3 and 1.2 (forward-secret AEAD suites only) and refuses TLS 1.1 and clients without the CA', async () => {
    const handshake = (opts: Record<string, unknown>) =>
      new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.ca, ...opts }, () => {
          resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
          socket.end();
        });
        socket.on('error', reject);
      });
    expect((await handshake({})).protocol).to.equal('TLSv1.3');
    const tls12 = await handshake({ maxVersion: 'TLSv1.2' });
    expect(tls12.protocol).to.equal('TLSv1.2');
    expect(tls12.cipher).to.match(/^ECDHE-.*(GCM|CHACHA20-POLY1305)/);
    // SECLEVEL=0 lets *this client* offer TLS 1.1, so the refusal is nginx's.
    const failure = (p: Promise<unknown>) => p.then(() => new Error('handshake succeeded'), (err: Error) => err);
    expect((await failure(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }))).message).to.match(/alert protocol version|unsupported protocol/);
    expect((await failure(handshake({ ca: undefined }))).message).to.match(/unable to verify the first certificate|unable to get local issuer|self-signed/);
  });

  it('keeps a sid on one worker and spreads sids over all three', async () => {
    const nodes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const sid = `n${i}`;
      const seen = new Set<string>();
      for (let j = 0; j < 3; j++) {
        const c = await open(`/ws?sid=${sid}`);
        seen.add(c.welcome!.node);
        await c.close();
      }
      expect(seen.size, sid).to.equal(1);
      const http = JSON.parse((await httpsGet(`https://127.0.0.1:${port}/readyz?sid=${sid}`, ca.ca)).body) as { node: string };
      expect(http.node).to.equal([...seen][0]);
      nodes.add(http.node);
    }
    expect(nodes.size).to.equal(3);
  });

  it('fails over after SIGKILL: the reconnect with the same sid reaches another worker', async () => {
    const first = await open('/ws?sid=failover');
    const victim = workers.find((w) => w.node === first.welcome!.node)!;
    await victim.stop('SIGKILL');
    expect((await first.closed).code).to.equal(1006);
    const second = await open('/ws?sid=failover');
    expect(second.welcome!.node).to.not.equal(victim.node);
    const third = await open('/ws?sid=failover');
    expect(third.welcome!.node).to.equal(second.welcome!.node);
    await Promise.all([second.close(), third.close()]);
  });

  it('moves clients of a draining worker elsewhere (its 503 goes to the next upstream)', async () => {
    const first = await open('/ws?sid=drain');
    const draining = workers.find((w) => w.node === first.welcome!.node)!;
    const exited = draining.stop('SIGTERM');
    expect((await first.closed).code).to.equal(1001);
    const again = await open('/ws?sid=drain');
    expect(again.welcome!.node).to.not.equal(draining.node);
    await again.close();
    expect((await exited).code).to.equal(0);
  });
});

describe('nginx (real nginx, shipped config with TLS): what reaches the upstream', function () {
  this.timeout(30_000);

  let ca: TestCa;
  let nginx: TestNginx | undefined;
  let upstream: Server;
  let wss: WebSocketServer;
  const seen: Array<{ kind: 'request' | 'upgrade'; url: string; headers: IncomingHttpHeaders }> = [];

  before(async function () {
    if (!hasNginx()) this.skip();
    ca = createTestCa();
    // A recording HTTP + WebSocket server in the workers' place: the worker does not expose
    // the headers it received.
    wss = new WebSocketServer({ noServer: true });
    upstream = createServer((req, res) => {
      seen.push({ kind: 'request', url: req.url!, headers: req.headers });
      res.end('{"node":"recorder"}');
    });
    upstream.on('upgrade', (req, socket, head) => {
      seen.push({ kind: 'upgrade', url: req.url!, headers: req.headers });
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m)));
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    nginx = await startNginx([`127.0.0.1:${(upstream.address() as AddressInfo).port}`], ca.issue('nginx'));
  });

  after(async () => {
    await nginx?.stop();
    wss?.close();
    upstream?.closeAllConnections();
    upstream?.close();
    ca?.remove();
  });

  it('forwards X-Forwarded-Proto https, the client address and the upgrade headers over plain HTTP', async () => {
    seen.length = 0;
    const ws = new WebSocket(`wss://localhost:${nginx!.httpsPort}/echo?sid=a`, { ca: ca.ca });
    ws.on('error', () => undefined);
    await once(ws, 'open');
    ws.send('x');
    expect(String((await once(ws, 'message'))[0])).to.equal('x');
    ws.close();
    await once(ws, 'close');
    const res = await httpsGet(`https://127.0.0.1:${nginx!.httpsPort}/page`, ca.ca);
    expect(res.status).to.equal(200);
    await fetch(`http://127.0.0.1:${nginx!.httpPort}/healthz`);
    const upgrade = seen.find((s) => s.kind === 'upgrade')!;
    expect(upgrade.url).to.equal('/echo?sid=a');
    expect(upgrade.headers).to.include({ upgrade: 'websocket', connection: 'upgrade', 'x-forwarded-proto': 'https', 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-host': 'localhost' });
    const page = seen.find((s) => s.url === '/page')!;
    expect(page.headers['x-forwarded-proto']).to.equal('https');
    expect(page.headers.connection).to.equal(undefined); // keep-alive pool to the upstream
    const health = seen.find((s) => s.url === '/healthz')!;
    expect(health.headers['x-forwarded-proto']).to.equal('http');
  });
});
