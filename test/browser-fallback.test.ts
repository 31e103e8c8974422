import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { createTestCa, eventually, hasNginx, startNginx, startRedis, startWorker, type TestCa, type TestNginx, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { launchChromium, type LaunchedBrowser } from './helpers/chromium.js';
import { Client } from '@herald/client';
import { WebSocket } from 'ws';

/** Run in the page before any script: the browser has no WebSocket (as behind a proxy that strips it). */
const REMOVE_WEBSOCKET = () => {
  delete (window as { WebSocket?: unknown }).WebSocket;
};

describe('browser: HTTP fallback through herald-balancer (redis, 2 workers, Chromium)', function () {
  this.timeout(90_000);
  let browser: LaunchedBrowser;
  let redis: TestRedis;
  let workers: WorkerProcess[];
  let balancer: BalancerProcess;
  const pageErrors: string[] = [];

  before(async () => {
    browser = await launchChromium();
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    await eventually(async () => expect((await balancer.status()).healthy).to.equal(2), { timeout: 10_000 });
  });
  after(async () => {
    await browser?.close();
    await balancer?.stop('SIGKILL');
    await Promise.all((workers ?? []).map((w) => w.stop('SIGKILL')));
    await redis?.stop('SIGKILL');
  });
  afterEach(async () => {
    for (const p of browser.context.pages()) await p.close();
    expect(pageErrors.splice(0)).to.deep.equal([]);
  });

  const open = async (user: string, room: string, { noWebSocket = false, query = '' } = {}): Promise<Page> => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    if (noWebSocket) await page.addInitScript(REMOVE_WEBSOCKET);
    await page.goto(`${balancer.url}/?user=${user}&sid=${user}&room=${room}&minDelay=300&maxDelay=1500${query}`);
    await page.waitForSelector('#badge[data-state="connected"]', { timeout: 20_000 });
    return page;
  };
  const say = async (page: Page, text: string) => {
    await page.fill('#text', text);
    await page.click('#send');
  };
  const messageText = (page: Page, text: string) => page.waitForSelector(`#messages li.msg:has-text(${JSON.stringify(text)})`, { timeout: 20_000 });
  const presence = (page: Page) => page.$$eval('#presence li', (lis) => lis.map((li) => li.getAttribute('data-user')).sort());

  it('a page on WebSocket and a page without WebSocket (SSE) chat and see each other', async () => {
    const alice = await open('alice', 'mixed');
    const bob = await open('bob', 'mixed', { noWebSocket: true });
    expect(await bob.evaluate(() => typeof (window as { WebSocket?: unknown }).WebSocket)).to.equal('undefined');
    expect(await alice.getAttribute('#badge', 'data-transport')).to.equal('websocket');
    expect(await bob.getAttribute('#badge', 'data-transport')).to.equal('sse');
    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });
    await eventually(async () => expect(await presence(bob)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });
    await say(alice, 'hello over websocket');
    await messageText(bob, 'hello over websocket');
    await say(bob, 'hello over sse');
    await messageText(alice, 'hello over sse');
    // Leaving over SSE ends the session: alice sees bob go at once, not after an idle timeout.
    await bob.close();
    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice']), { timeout: 10_000 });
  });

  it('the demo chats over long-polling with /client.js when WebSocket is absent', async () => {
    const carol = await open('carol', 'poll', { noWebSocket: true, query: '&transports=long-polling' });
    const dave = await open('dave', 'poll', { noWebSocket: true });
    expect(await carol.getAttribute('#badge', 'data-transport')).to.equal('long-polling');
    expect(await dave.getAttribute('#badge', 'data-transport')).to.equal('sse');
    await eventually(async () => expect(await presence(carol)).to.deep.equal(['carol', 'dave']), { timeout: 10_000 });
    await say(carol, 'polling works');
    await messageText(dave, 'polling works');
    await say(dave, 'so does sse');
    await messageText(carol, 'so does sse');
    const texts = await carol.$$eval('#messages li.msg', (lis) => lis.map((li) => li.lastChild?.textContent));
    expect(texts).to.deep.equal(['polling works', 'so does sse']);
  });
});

describe('browser: HTTP fallback through the shipped nginx config (real nginx with TLS, redis, 2 workers, Chromium)', function () {
  this.timeout(90_000);
  let browser: LaunchedBrowser;
  let redis: TestRedis;
  let workers: WorkerProcess[] = [];
  let nginx: TestNginx | undefined;
  let ca: TestCa | undefined;
  const pageErrors: string[] = [];

  before(async function () {
    if (!hasNginx()) this.skip(); // the nginx Debian package is not installed here
    ca = createTestCa();
    browser = await launchChromium({ ignoreHTTPSErrors: true });
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, HERALD_DRAIN_MS: '1000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    nginx = await startNginx(workers.map((w) => `127.0.0.1:${w.port}`), ca.issue('nginx'));
  });
  after(async () => {
    await browser?.close();
    await nginx?.stop();
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis?.stop('SIGKILL');
    ca?.remove();
  });

  it('pages without WebSocket chat over SSE and long-polling with a page on WebSocket (streams unbuffered)', async () => {
    const open = async (user: string, { noWebSocket = false, query = '' } = {}) => {
      const page = await browser.context.newPage();
      page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
      if (noWebSocket) await page.addInitScript(REMOVE_WEBSOCKET);
      await page.goto(`https://127.0.0.1:${nginx!.httpsPort}/?user=${user}&sid=${user}&room=nginx${query}`);
      await page.waitForSelector('#badge[data-state="connected"]', { timeout: 20_000 });
      return page;
    };
    const [ws, sse, poll] = [await open('wanda'), await open('sam', { noWebSocket: true }), await open('pat', { noWebSocket: true, query: '&transports=long-polling' })];
    expect([await ws.getAttribute('#badge', 'data-transport'), await sse.getAttribute('#badge', 'data-transport'), await poll.getAttribute('#badge', 'data-transport')]).to.deep.equal(['websocket', 'sse', 'long-polling']);
    for (const [from, text] of [[ws, 'one'], [sse, 'two'], [poll, 'three']] as const) {
      await from.fill('#text', text);
      await from.click('#send');
      // Each reaches the others live (an SSE stream buffered by nginx would hold it back).
      for (const page of [ws, sse, poll]) await page.waitForSelector(`#messages li.msg:has-text("${text}")`, { timeout: 10_000 });
    }
    await eventually(async () => expect(await sse.$$eval('#presence li', (lis) => lis.map((li) => li.getAttribute('data-user')).sort())).to.deep.equal(['pat', 'sam', 'wanda']), { timeout: 10_000 });
    for (const p of browser.context.pages()) await p.close();
    expect(pageErrors).to.deep.equal([]);
  });
});

describe('browser: recovery over the fallbacks across a worker SIGKILL (redis, 2 workers, herald-balancer, Chromium)', function () {
  this.timeout(120_000);
  let browser: LaunchedBrowser;
  let redis: TestRedis;
  let workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;
  let publisher: Client | undefined;

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    await eventually(async () => expect((await balancer!.status()).healthy).to.equal(2), { timeout: 10_000 });
  });
  afterEach(async () => {
    publisher?.close();
    for (const p of browser.context.pages()) await p.close();
    await balancer?.stop('SIGKILL');
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis?.stop('SIGKILL');
  });

  for (const transport of ['sse', 'long-polling'] as const) {
    it(`a page without WebSocket on ${transport} (${transport === 'sse' ? 'EventSource' : 'fetch'}) loses nothing of a history channel`, async () => {
      const page = await browser.context.newPage();
      await page.addInitScript(REMOVE_WEBSOCKET);
      await page.goto(`${balancer!.url}/?user=erin&sid=erin&room=elsewhere`);
      await page.waitForSelector('#badge[data-state="connected"]', { timeout: 20_000 });
      // The page's own Herald client (from /client.js), counting what it receives.
      // A string, not a function: tsx would add its `__name` helper to a function, which the page lacks.
      const node = (await page.evaluate(`(async () => {
        window.got = [];
        const c = new Herald.Client('/ws', { transports: [${JSON.stringify(transport)}], params: { sid: 'erin-count' }, minReconnectDelay: 200, maxReconnectDelay: 1000 });
        c.on('error', () => undefined);
        const sub = c.subscribe('room:kill', { onMessage: (m) => window.got.push(m.data.n) });
        c.connect();
        window.hc = c;
        const welcome = await c.ready(20000);
        await sub.ready();
        return welcome.node;
      })()`)) as string;
      expect(await page.evaluate(() => (window as unknown as { hc: { transport: string } }).hc.transport)).to.equal(transport);
      const other = workers.find((w) => w.node !== node)!;
      publisher = new Client(`${other.wsUrl}/ws`, { WebSocket });
      publisher.on('error', () => undefined);
      publisher.connect();
      await publisher.ready();
      const got = () => page.evaluate(() => (window as unknown as { got: number[] }).got);
      const total = 40;
      for (let n = 1; n <= total; n++) {
        await publisher.publish('room:kill', { n });
        if (n === 10) {
          await eventually(async () => expect(await got()).to.have.length(10), { timeout: 10_000 });
          await workers.find((w) => w.node === node)!.stop('SIGKILL');
        }
      }
      await eventually(async () => expect(await got()).to.have.length(total), { timeout: 30_000, interval: 200 });
      expect(await got()).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
      const after = (await page.evaluate('({ node: window.hc.welcome && window.hc.welcome.node, transport: window.hc.transport })')) as { node?: string; transport: string };
      expect(after).to.deep.equal({ node: other.node, transport });
    });
  }
});
