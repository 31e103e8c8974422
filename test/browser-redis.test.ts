import { expect } from 'chai';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { launchChromium, type LaunchedBrowser } from './helpers/chromium.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

/**
 * Two pages on two different workers sharing Redis. alice reaches worker 1 through a TCP proxy
 * that, once worker 1 is killed, sends new connections to worker 2 (what a balancer does).
 */
describe('demo app across workers (redis, 2 workers, Chromium)', function () {
  this.timeout(90_000);
  let browser: LaunchedBrowser;
  let redis: TestRedis;
  let workers: WorkerProcess[];
  let proxy: TcpProxy;
  const pageErrors: string[] = [];

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    redis = await startRedis();
    // A short lease so the killed worker's presence entries expire within the test.
    const env = { REDIS_URL: redis.url, HERALD_REDIS_PREFIX: 'herald-demo:', HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    proxy = await TcpProxy.start(workers[0]!.port);
  });
  afterEach(async () => {
    for (const p of browser.context.pages()) await p.close();
    await proxy.close();
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop('SIGKILL');
    expect(pageErrors.splice(0)).to.deep.equal([]);
  });

  const open = async (port: number, user: string, delays: string): Promise<Page> => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/?user=${user}&room=lobby&${delays}`);
    await page.waitForSelector('#badge[data-state="connected"]');
    return page;
  };
  const say = async (page: Page, text: string) => {
    await page.fill('#text', text);
    await page.click('#send');
  };
  const messageText = (page: Page, text: string) =>
    page.waitForSelector(`#messages li.msg:has-text(${JSON.stringify(text)})`, { timeout: 20_000 });
  const presence = (page: Page) => page.$$eval('#presence li', (lis) => lis.map((li) => li.getAttribute('data-user')).sort());

  it('pages on different workers chat and see each other; killing one page’s worker shows the badge, then it catches up', async () => {
    const [w1, w2] = workers as [WorkerProcess, WorkerProcess];
    // alice retries slowly, so what bob says after the kill reaches her by recovery, not live.
    const alice = await open(proxy.port, 'alice', 'minDelay=2000&maxDelay=3000');
    const bob = await open(w2.port, 'bob', 'minDelay=300&maxDelay=1500');
    expect(await alice.textContent('#badge')).to.equal(`connected to worker ${w1.node}`);
    expect(await bob.textContent('#badge')).to.equal(`connected to worker ${w2.node}`);
    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });
    await eventually(async () => expect(await presence(bob)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });

    await say(alice, 'hello from alice');
    await messageText(bob, 'hello from alice');
    await say(bob, 'hello from bob');
    await messageText(alice, 'hello from bob');

    proxy.retarget(w2.port);
    await w1.stop('SIGKILL');
    await alice.waitForSelector('#badge[data-state="reconnecting"]');
    expect(await alice.textContent('#badge')).to.match(/^reconnecting in \d+ s$/);
    await mkdir(ARTIFACTS, { recursive: true });
    await alice.screenshot({ path: `${ARTIFACTS}browser-redis-reconnecting.png` });
    await say(bob, 'sent while alice was away');
    await messageText(bob, 'sent while alice was away');
    expect(await alice.$$('#messages li.msg:has-text("sent while alice was away")')).to.have.length(0);

    await alice.waitForSelector('#badge[data-state="connected"]', { timeout: 20_000 });
    expect(await alice.textContent('#badge')).to.equal(`connected to worker ${w2.node}`);
    await messageText(alice, 'sent while alice was away');
    await alice.waitForSelector('#messages li.notice:has-text("missed messages recovered")');
    const texts = await alice.$$eval('#messages li.msg', (lis) => lis.map((li) => li.lastChild?.textContent));
    expect(texts).to.deep.equal(['hello from alice', 'hello from bob', 'sent while alice was away']);
    await alice.screenshot({ path: `${ARTIFACTS}browser-redis-recovered.png` });
    // alice's connection on the killed worker lingers until its lease runs out, then leaves.
    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice', 'bob']), { timeout: 20_000 });
    await eventually(async () => expect(await presence(bob)).to.deep.equal(['alice', 'bob']), { timeout: 20_000 });
  });
});
