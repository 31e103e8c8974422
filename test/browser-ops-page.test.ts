import { expect } from 'chai';
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { CHROMIUM_PATH, launchChromium, type LaunchedBrowser } from './helpers/chromium.js';
import { eventually } from './helpers/wait.js';
import { startWorker, type WorkerProcess } from './helpers/worker.js';
import { TestClient } from './helpers/ws-client.js';

/** The rows of the ops page's worker table, as the page shows them. */
async function rows(page: Page): Promise<Array<{ node: string; state: string; publishes: string; framesIn: string; redis: string }>> {
  return page.$$eval('#workers tr', (trs) =>
    trs.map((tr) => {
      const cells = Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '');
      return { node: (tr as HTMLElement).dataset.node ?? '', state: cells[2]!, framesIn: cells[5]!, publishes: cells[7]!, redis: cells[8]! };
    }),
  );
}

describe('balancer ops page /balancer/ (Chromium, two workers)', function () {
  this.timeout(60_000);
  let workers: WorkerProcess[] = [];
  let balancer: BalancerProcess | undefined;
  let browser: LaunchedBrowser | undefined;
  const clients: TestClient[] = [];

  before(function () {
    if (!existsSync(CHROMIUM_PATH)) this.skip();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await browser?.close();
    await balancer?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    browser = undefined;
    balancer = undefined;
    workers = [];
  });

  it('shows both workers, healthy, and a message rate that rises when messages flow', async () => {
    workers = await Promise.all([startWorker(), startWorker()]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    browser = await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(`${balancer.url}/balancer/`);
    expect(await page.title()).to.equal('herald-balancer');

    // Both workers, healthy, with their broker up, and (after two polls) a rate of 0.
    const idle = await eventually(async () => {
      const shown = await rows(page);
      if (shown.length !== 2 || shown.some((r) => r.state !== 'healthy' || r.publishes === '…')) throw new Error(JSON.stringify(shown));
      return shown;
    }, { timeout: 15_000, interval: 200 });
    // Static workers (HERALD_WORKERS) have no node id: the page names them by address.
    const name = (w: WorkerProcess) => `127.0.0.1:${w.port}`;
    expect(idle.map((r) => r.node).sort()).to.deep.equal(workers.map(name).sort());
    expect(idle.map((r) => r.redis)).to.deep.equal(['up', 'up']);
    expect(idle.map((r) => Number(r.publishes))).to.deep.equal([0, 0]);

    // Publishes on the first worker: its row's rate rises, the other's stays 0.
    const [busy, quiet] = workers as [WorkerProcess, WorkerProcess];
    const client = await TestClient.open(`${busy.wsUrl}/ws`);
    clients.push(client);
    let sent = 0;
    const timer = setInterval(() => {
      client.send({ type: 'publish', channel: 'room:ops', data: sent++ });
    }, 20);
    try {
      const moving = await eventually(async () => {
        const shown = await rows(page);
        const row = shown.find((r) => r.node === name(busy))!;
        if (!(Number(row.publishes) > 5)) throw new Error(JSON.stringify(shown));
        return shown;
      }, { timeout: 15_000, interval: 200 });
      expect(Number(moving.find((r) => r.node === name(busy))!.framesIn)).to.be.greaterThan(5);
      expect(Number(moving.find((r) => r.node === name(quiet))!.publishes)).to.equal(0);
    } finally {
      clearInterval(timer);
    }
  });

  it('GET /balancer/stats: the status plus each worker\'s scraped figures; a dead worker shows its scrape error', async () => {
    workers = await Promise.all([startWorker(), startWorker()]);
    balancer = await startBalancer({ HERALD_WORKERS: workers.map((w) => `127.0.0.1:${w.port}`).join(',') });
    const get = async () => (await (await fetch(`${balancer!.url}/balancer/stats`)).json()) as {
      healthy: number;
      workers: Array<{ node: string | null; address: string; metrics: { connections: number | null; brokerUp: boolean | null; error: string | null } }>;
    };
    const first = await eventually(async () => {
      const s = await get();
      if (s.healthy !== 2) throw new Error(`healthy ${s.healthy}`);
      return s;
    });
    expect(first.workers.map((w) => w.metrics.brokerUp)).to.deep.equal([true, true]);
    expect(first.workers.map((w) => w.metrics.connections)).to.deep.equal([0, 0]);
    expect((await fetch(`${balancer.url}/balancer`, { redirect: 'manual' })).headers.get('location')).to.equal('/balancer/');
    await workers[1]!.stop('SIGKILL');
    const after = await eventually(async () => {
      const s = await get();
      const dead = s.workers.find((w) => w.address === `127.0.0.1:${workers[1]!.port}`)!;
      if (!dead.metrics.error) throw new Error('no scrape error yet');
      return s;
    }, { timeout: 10_000, interval: 200 });
    expect(after.workers.find((w) => w.address === `127.0.0.1:${workers[0]!.port}`)!.metrics.error).to.equal(null);
  });
});
