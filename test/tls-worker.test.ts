import { expect } from 'chai';
import { once } from 'node:events';
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { copyFileSync, writeFileSync } from 'node:fs';
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
  WORKER_BIN,
  type TestCa,
  type TestCert,
  type WorkerProcess,
} from './helpers/index.js';

// A lone worker serving https/wss itself (HERALD_TLS_CERT / HERALD_TLS_KEY), with a CA and
// certificates made by openssl for this run.
describe('worker with TLS (worker processes, openssl test CA)', function () {
  this.timeout(30_000);

  let ca: TestCa;
  let cert: TestCert;
  let next: TestCert;
  let worker: WorkerProcess | undefined;

  before(() => {
    ca = createTestCa();
    cert = ca.issue('worker');
    next = ca.issue('worker-next');
  });
  after(() => ca?.remove());
  afterEach(async () => {
    await worker?.stop('SIGKILL');
    worker = undefined;
  });

  it('serves the demo page, /client.js and /readyz over https, and /echo and /ws over wss', async () => {
    worker = await startWorker({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.keyFile });
    expect(worker.url).to.match(/^https:/);
    const page = await httpsGet(`${worker.url}/`, ca.ca);
    expect(page.status).to.equal(200);
    expect(page.body).to.include('<script src="/client.js"');
    expect(page.serial).to.equal(cert.serial);
    const bundle = await httpsGet(`${worker.url}/client.js`, ca.ca);
    expect([bundle.status, bundle.headers['content-type']]).to.deep.equal([200, 'text/javascript; charset=utf-8']);
    expect(bundle.body).to.include('Herald');
    expect((await httpsGet(`${worker.url}/readyz`, ca.ca)).status).to.equal(200);

    const echo = new WebSocket(`${worker.wsUrl}/echo`, { ca: ca.ca });
    await once(echo, 'open');
    echo.send('over tls');
    const [data] = (await once(echo, 'message')) as [Buffer];
    expect(data.toString()).to.equal('over tls');
    echo.close();

    // @herald/client in Node: the `ws` constructor it is given trusts the CA.
    const { node, received } = await heraldClientRoundTrip(`${worker.wsUrl}/ws`, ca.ca, 'hello worker');
    expect(node).to.equal(worker.node);
    expect(received).to.deep.equal([{ text: 'hello worker' }]);
  });

  it('refuses clients that do not trust the CA, and plain HTTP on the TLS port, without harm to others', async () => {
    worker = await startWorker({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.keyFile });
    const untrusted = new WebSocket(`${worker.wsUrl}/echo`);
    const [err] = (await once(untrusted, 'error')) as [Error];
    expect(err.message).to.match(/self-signed|unable to (verify|get local issuer)/);
    // Plain HTTP on the TLS port is told so, in the JSON body of every refusal.
    const plain = await fetch(`http://127.0.0.1:${worker.port}/readyz`);
    expect(plain.status).to.equal(400);
    expect(await plain.json()).to.deep.equal({ error: { code: 'bad_request', message: PLAIN_HTTP_ON_TLS_MESSAGE } });
    const c = await TestClient.open(`${worker.wsUrl}/ws`, { ca: ca.ca });
    expect((await c.request({ type: 'subscribe', channel: 'room:ok' })).type).to.equal('ack');
    await c.close();
  });

  it('closes a connection that sends nothing within the handshake timeout, and takes a ClientHello that comes late', async () => {
    worker = await startWorker({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.keyFile, HERALD_HANDSHAKE_TIMEOUT_MS: '400' });
    const silent = connect(worker.port, '127.0.0.1');
    silent.on('error', () => undefined);
    await once(silent, 'connect');
    const started = Date.now();
    await once(silent, 'close');
    expect(Date.now() - started).to.be.within(300, 5000);
    // A TLS client whose ClientHello leaves 150 ms after its TCP connect is served as usual.
    const raw = connect(worker.port, '127.0.0.1');
    await once(raw, 'connect');
    await new Promise((r) => setTimeout(r, 150));
    const res = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: worker!.port, path: '/readyz', ca: ca.ca, servername: 'localhost', createConnection: () => tlsConnect({ socket: raw, ca: ca.ca, servername: 'localhost' }) }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(res).to.equal(200);
  });

  it('reloads the certificate on SIGHUP: an open wss connection goes on, a new one sees the new certificate', async () => {
    const certFile = join(ca.dir, 'reload-worker.pem');
    const keyFile = join(ca.dir, 'reload-worker.key');
    copyFileSync(cert.certFile, certFile);
    copyFileSync(cert.keyFile, keyFile);
    worker = await startWorker({ HERALD_TLS_CERT: certFile, HERALD_TLS_KEY: keyFile });
    const open = await TestClient.open(`${worker.wsUrl}/ws?user=before`, { ca: ca.ca });
    expect((await open.request({ type: 'subscribe', channel: 'room:reload' })).type).to.equal('ack');

    // A broken pair is refused: the old certificate stays in force.
    writeFileSync(keyFile, 'not a key');
    worker.child.proc.kill('SIGHUP');
    await worker.child.waitForLine((l) => l.includes('TLS certificate reload failed'));
    expect((await httpsGet(`${worker.url}/readyz`, ca.ca)).serial).to.equal(cert.serial);

    copyFileSync(next.certFile, certFile);
    copyFileSync(next.keyFile, keyFile);
    worker.child.proc.kill('SIGHUP');
    await worker.child.waitForLine((l) => l.includes('TLS certificate reloaded'));
    await eventually(async () => expect((await httpsGet(`${worker!.url}/readyz`, ca.ca)).serial).to.equal(next.serial));

    // The connection opened before both reloads still exchanges frames.
    expect((await open.request({ type: 'publish', channel: 'room:reload', data: 'after' })).type).to.equal('ack');
    await open.waitFrame((f) => f.type === 'message' && f.data === 'after');
    const fresh = await TestClient.open(`${worker.wsUrl}/ws`, { ca: ca.ca });
    expect(fresh.welcome!.node).to.equal(worker.node);
    await fresh.close();
    await open.close();
  });

  for (const [label, env, expected] of [
    ['HERALD_TLS_CERT without HERALD_TLS_KEY', () => ({ HERALD_TLS_CERT: cert.certFile }), /HERALD_TLS_CERT and HERALD_TLS_KEY go together: HERALD_TLS_CERT is set/],
    ['a key that does not match the certificate', () => ({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: next.keyFile }), /HERALD_TLS_CERT .* HERALD_TLS_KEY .*(key values mismatch|KEY_VALUES_MISMATCH)/],
    ['a missing certificate file', () => ({ HERALD_TLS_CERT: join(ca.dir, 'nope.pem'), HERALD_TLS_KEY: cert.keyFile }), /HERALD_TLS_CERT .*nope\.pem: ENOENT/],
  ] as const) {
    it(`exits 1 with one line for ${label}`, async () => {
      const child = spawnChild('worker', process.execPath, [WORKER_BIN], { PORT: '0', HOST: '127.0.0.1', ...env() });
      const { code } = await child.exited;
      expect(code).to.equal(1);
      expect(child.lines).to.have.length(1);
      expect(child.lines[0]).to.match(/^herald-worker: /).and.to.match(expected);
    });
  }
});
