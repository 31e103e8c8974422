import { expect } from 'chai';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { startWorker, type WorkerProcess } from './helpers/index.js';
import { launchChromium, type LaunchedBrowser } from './helpers/chromium.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

/** A 2x2 RGB PNG (red, green / blue, white), small enough for one binary frame. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFElEQVR4nGP4z8DAAMIM/////w8AH+4F+7C4l8kAAAAASUVORK5CYII=', 'base64');

describe('demo app in Chromium (worker processes)', function () {
  this.timeout(60_000);
  let browser: LaunchedBrowser;
  const workers: WorkerProcess[] = [];
  const proxies: TcpProxy[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const p of browser.context.pages()) await p.close();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    expect(pageErrors.splice(0)).to.deep.equal([]);
  });

  const worker = async (env: NodeJS.ProcessEnv = {}) => {
    const w = await startWorker({ HERALD_DRAIN_MS: '1000', ...env });
    workers.push(w);
    return w;
  };

  /** Opens the demo as `user` on `port`, with short reconnect delays, and waits for the connected badge. */
  const open = async (port: number, user: string): Promise<Page> => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/?user=${user}&room=lobby&minDelay=300&maxDelay=1500`);
    await page.waitForSelector('#badge[data-state="connected"]');
    return page;
  };
  const presence = (page: Page) => page.$$eval('#presence li', (lis) => lis.map((li) => li.getAttribute('data-user')));
  const say = async (page: Page, text: string) => {
    await page.fill('#text', text);
    await page.click('#send');
  };
  const messageText = (page: Page, text: string) =>
    page.waitForSelector(`#messages li.msg:has-text(${JSON.stringify(text)})`, { timeout: 15_000 });

  it('two pages chat, see each other in the presence list and exchange a file', async () => {
    const w = await worker();
    const alice = await open(w.port, 'alice');
    const bob = await open(w.port, 'bob');
    expect(await alice.textContent('#badge')).to.equal(`connected to worker ${w.node}`);
    await alice.waitForFunction(() => document.querySelectorAll('#presence li').length === 2);
    await bob.waitForFunction(() => document.querySelectorAll('#presence li').length === 2);
    expect((await presence(alice)).sort()).to.deep.equal(['alice', 'bob']);
    expect((await presence(bob)).sort()).to.deep.equal(['alice', 'bob']);

    await say(alice, 'hi bob');
    const line = await messageText(bob, 'hi bob');
    expect(await line.getAttribute('data-from')).to.equal('alice');

    await bob.setInputFiles('#file', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    const img = await alice.waitForSelector('#messages li.attachment img[alt="dot.png"]', { state: 'attached' });
    expect(await img.evaluate((el) => (el as HTMLImageElement).decode().then(() => (el as HTMLImageElement).naturalWidth))).to.equal(2);

    await bob.close();
    await alice.waitForFunction(() => document.querySelectorAll('#presence li').length === 1);
  });

  it('shows the reconnecting badge when its link to the worker dies, then recovers the messages sent meanwhile', async () => {
    const w = await worker();
    // alice reaches the worker through a TCP proxy, so her path can die while the worker (and
    // its history) lives on; bob is connected directly.
    const proxy = await TcpProxy.start(w.port);
    proxies.push(proxy);
    const alice = await open(proxy.port, 'alice');
    const bob = await open(w.port, 'bob');
    await say(bob, 'before');
    await messageText(alice, 'before');

    await proxy.down();
    await alice.waitForSelector('#badge[data-state="reconnecting"]');
    expect(await alice.textContent('#badge')).to.match(/^reconnecting in \d+ s$/);
    await bob.waitForFunction(() => document.querySelectorAll('#presence li').length === 1);
    await say(bob, 'while you were away 1');
    await say(bob, 'while you were away 2');
    await messageText(bob, 'while you were away 2');

    await proxy.up();
    await alice.waitForSelector('#badge[data-state="connected"]', { timeout: 15_000 });
    await messageText(alice, 'while you were away 1');
    await messageText(alice, 'while you were away 2');
    await alice.waitForSelector('#messages li.notice:has-text("missed messages recovered")');
    const texts = await alice.$$eval('#messages li.msg', (lis) => lis.map((li) => li.lastChild?.textContent));
    expect(texts).to.deep.equal(['before', 'while you were away 1', 'while you were away 2']);
    await alice.waitForFunction(() => document.querySelectorAll('#presence li').length === 2);
    await mkdir(ARTIFACTS, { recursive: true });
    await alice.screenshot({ path: `${ARTIFACTS}browser-demo-recovered.png` });
  });

  it('reconnects both pages to a new worker after the worker is killed', async () => {
    const w1 = await worker();
    const alice = await open(w1.port, 'alice');
    const bob = await open(w1.port, 'bob');
    await w1.stop('SIGKILL');
    for (const page of [alice, bob]) await page.waitForSelector('#badge[data-state="reconnecting"]');
    await alice.screenshot({ path: `${(await mkdir(ARTIFACTS, { recursive: true }), ARTIFACTS)}browser-demo-reconnecting.png` });
    const w2 = await worker({ PORT: String(w1.port) });
    for (const page of [alice, bob]) {
      await page.waitForSelector('#badge[data-state="connected"]', { timeout: 15_000 });
      expect(await page.textContent('#badge')).to.equal(`connected to worker ${w2.node}`);
    }
    // The restarted single worker has no history: the page says so instead of pretending.
    await alice.waitForSelector('#messages li.notice:has-text("some messages may be missing")');
    await alice.waitForFunction(() => document.querySelectorAll('#presence li').length === 2);
    await say(bob, 'on the new worker');
    await messageText(alice, 'on the new worker');
  });
});
