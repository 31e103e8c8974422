import { expect } from 'chai';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { nodesForKeys, startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { launchChromium, type LaunchedBrowser } from './helpers/chromium.js';

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

describe('demo app through the balancer (redis, 2 workers, Chromium)', function () {
  this.timeout(90_000);
  let browser: LaunchedBrowser;
  let redis: TestRedis;
  let workers: WorkerProcess[];
  let balancer: BalancerProcess;
  const pageErrors: string[] = [];

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    redis = await startRedis();
    // A short lease so a killed worker's presence entries expire within the test.
    const env = { REDIS_URL: redis.url, HERALD_DRAIN_MS: '1000', HERALD_LEASE_MS: '3000' };
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    await eventually(async () => expect((await balancer.status()).healthy).to.equal(2), { timeout: 10_000 });
  });
  afterEach(async () => {
    for (const p of browser.context.pages()) await p.close();
    await balancer.stop('SIGKILL');
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await redis.stop('SIGKILL');
    expect(pageErrors.splice(0)).to.deep.equal([]);
  });

  const open = async (user: string, sid: string, delays = 'minDelay=300&maxDelay=1500'): Promise<Page> => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
    await page.goto(`${balancer.url}/?user=${user}&sid=${sid}&room=lobby&${delays}`);
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

  it('two pages on different workers chat and see each other; killing one page’s worker shows the badge, then it catches up', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `tab${i}`);
    const map = await nodesForKeys(balancer.url, keys);
    const aliceSid = keys[0]!;
    const bobSid = keys.find((k) => map.get(k) !== map.get(aliceSid))!;
    // alice retries slowly (5–6 s: room for the screenshot and bob's round trip on a busy machine),
    // so what bob says after the kill reaches her by recovery, not live.
    const alice = await open('alice', aliceSid, 'minDelay=5000&maxDelay=6000');
    const bob = await open('bob', bobSid);
    const aliceNode = (await alice.getAttribute('#badge', 'data-node'))!;
    const bobNode = (await bob.getAttribute('#badge', 'data-node'))!;
    expect(aliceNode).to.not.equal(bobNode);
    expect(await alice.textContent('#badge')).to.equal(`connected to worker ${aliceNode}`);

    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });
    await eventually(async () => expect(await presence(bob)).to.deep.equal(['alice', 'bob']), { timeout: 10_000 });
    await say(alice, 'hello from alice');
    await messageText(bob, 'hello from alice');
    await say(bob, 'hello from bob');
    await messageText(alice, 'hello from bob');

    await workers.find((w) => w.node === aliceNode)!.stop('SIGKILL');
    await alice.waitForSelector('#badge[data-state="reconnecting"]');
    expect(await alice.textContent('#badge')).to.match(/^reconnecting in \d+ s$/);
    await mkdir(ARTIFACTS, { recursive: true });
    await alice.screenshot({ path: `${ARTIFACTS}browser-cluster-reconnecting.png` });
    await say(bob, 'sent while alice was away');
    await messageText(bob, 'sent while alice was away');
    expect(await alice.$$('#messages li.msg:has-text("sent while alice was away")')).to.have.length(0);

    await alice.waitForSelector(`#badge[data-state="connected"][data-node="${bobNode}"]`, { timeout: 20_000 });
    await messageText(alice, 'sent while alice was away');
    const texts = await alice.$$eval('#messages li.msg', (lis) => lis.map((li) => li.lastChild?.textContent));
    expect(texts).to.deep.equal(['hello from alice', 'hello from bob', 'sent while alice was away']);
    await alice.waitForSelector('#messages li.notice:has-text("missed messages recovered")');
    await alice.screenshot({ path: `${ARTIFACTS}browser-cluster-recovered.png` });
    // alice's connection on the killed worker lingers until its lease (3 s here) runs out, then leaves.
    await eventually(async () => expect(await presence(alice)).to.deep.equal(['alice', 'bob']), { timeout: 20_000 });
    await eventually(async () => expect(await presence(bob)).to.deep.equal(['alice', 'bob']), { timeout: 20_000 });
  });
});
