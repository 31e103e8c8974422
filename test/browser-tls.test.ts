import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { createTestCa, startWorker, type TestCa, type TestCert, type WorkerProcess } from './helpers/index.js';
import { launchChromium, type LaunchedBrowser } from './helpers/chromium.js';

// The demo page and /client.js from a worker serving https itself (HERALD_TLS_CERT/KEY), in real
// Chromium that trusts the test certificate by its SPKI hash (computed by openssl) and nothing else.
describe('demo app over https in Chromium (worker process with TLS)', function () {
  this.timeout(60_000);
  let ca: TestCa;
  let cert: TestCert;
  let browser: LaunchedBrowser;
  let worker: WorkerProcess;
  const pageErrors: string[] = [];
  const sockets: string[] = [];

  before(async () => {
    ca = createTestCa();
    cert = ca.issue('worker-browser');
    browser = await launchChromium({ extraArgs: [`--ignore-certificate-errors-spki-list=${cert.spki}`] });
    worker = await startWorker({ HERALD_TLS_CERT: cert.certFile, HERALD_TLS_KEY: cert.keyFile, HERALD_DRAIN_MS: '1000' });
  });
  after(async () => {
    await browser?.close();
    await worker?.stop('SIGKILL');
    ca?.remove();
  });

  const open = async (user: string): Promise<Page> => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const res = await page.goto(`${worker.url}/?user=${user}&room=lobby&minDelay=300&maxDelay=1500`);
    expect(res?.status()).to.equal(200);
    await page.waitForSelector('#badge[data-state="connected"]');
    return page;
  };

  it('loads the page and /client.js over https, connects over wss, and a chat message goes round', async () => {
    expect(worker.url).to.match(/^https:\/\/127\.0\.0\.1:/);
    const alice = await open('alice');
    const bob = await open('bob');
    expect(await alice.textContent('#badge')).to.equal(`connected to worker ${worker.node}`);
    expect(await alice.evaluate(() => location.protocol)).to.equal('https:');
    // Both pages' connections went to wss:// (an https page may not open ws://).
    expect(sockets).to.have.length(2);
    for (const url of sockets) expect(url).to.match(new RegExp(`^wss://127\\.0\\.0\\.1:${worker.port}/ws`));

    await alice.fill('#text', 'hello over wss');
    await alice.click('#send');
    const line = await bob.waitForSelector('#messages li.msg:has-text("hello over wss")', { timeout: 15_000 });
    expect(await line.getAttribute('data-from')).to.equal('alice');
    await alice.waitForSelector('#messages li.msg:has-text("hello over wss")');
    expect(pageErrors).to.deep.equal([]);
  });

  it('a certificate Chromium was not told about is refused (the SPKI flag is what makes the test page load)', async () => {
    const other = ca.issue('worker-untrusted');
    const w = await startWorker({ HERALD_TLS_CERT: other.certFile, HERALD_TLS_KEY: other.keyFile });
    try {
      const page = await browser.context.newPage();
      const err = await page.goto(`${w.url}/`).then(() => undefined, (e: Error) => e.message);
      expect(err).to.match(/ERR_CERT_AUTHORITY_INVALID/);
      await page.close();
    } finally {
      await w.stop('SIGKILL');
    }
  });
});
