import { expect } from 'chai';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { setTimeout as delay } from 'node:timers/promises';
import type { IncomingMessage } from 'node:http';
import { TokenBucket, ConnectionRateLimiter, type HeraldWorker, type WorkerOptions } from '@herald/server';
import { IpConnectionLimit, clientAddress, TrustedProxies } from '@herald/shared';
import { TestClient, startInProcess, startWorker, eventually, upgradeRequest, type WorkerProcess } from './helpers/index.js';

describe('security: rate limiter units', () => {
  it('token bucket: burst, refill at the rate, 0 = unlimited', () => {
    let now = 0;
    const b = new TokenBucket(10, 5, () => now);
    expect(Array.from({ length: 6 }, () => b.take())).to.deep.equal([true, true, true, true, true, false]);
    now = 100; // 1 token back
    expect([b.take(), b.take()]).to.deep.equal([true, false]);
    now = 10_000; // capped at the burst
    expect(Array.from({ length: 6 }, () => b.take()).filter(Boolean)).to.have.length(5);
    const off = new TokenBucket(0, 1, () => now);
    expect(Array.from({ length: 100 }, () => off.take()).every(Boolean)).to.equal(true);
  });

  it('connection limiter: refuses, then calls sustained refusal abuse; caps error frames', () => {
    let now = 0;
    const l = new ConnectionRateLimiter({ framesPerSec: 1, framesBurst: 2, bytesPerSec: 100, bytesBurst: 100, errorsPerSec: 1, errorsBurst: 2, maxRefused: 3 }, 50, () => now);
    expect([l.admit(10), l.admit(10), l.admit(10), l.admit(10), l.admit(10), l.admit(10)]).to.deep.equal(['ok', 'ok', 'refused', 'refused', 'refused', 'abuse']);
    now = 10_000;
    expect(l.admit(200)).to.equal('refused'); // larger than the byte burst
    expect(l.admit(90)).to.equal('ok'); // the refused frame did not use up the frame budget
    expect([l.allowError(), l.allowError(), l.allowError()]).to.deep.equal([true, true, false]);
    expect(l.droppedErrors).to.equal(1);
  });

  it('client address: X-Forwarded-For only through trusted proxies, walked from the right', () => {
    const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
    const trusted = new TrustedProxies(['10.0.0.1', '10.0.0.2']);
    expect(clientAddress(req('::ffff:203.0.113.7'), trusted)).to.equal('203.0.113.7');
    expect(clientAddress(req('203.0.113.7', '1.2.3.4'), trusted)).to.equal('203.0.113.7'); // untrusted peer: header ignored
    expect(clientAddress(req('10.0.0.1', '198.51.100.1'), trusted)).to.equal('198.51.100.1');
    expect(clientAddress(req('10.0.0.1', '6.6.6.6, 198.51.100.1'), trusted)).to.equal('198.51.100.1'); // forged left part
    expect(clientAddress(req('10.0.0.1', '198.51.100.1, 10.0.0.2'), trusted)).to.equal('198.51.100.1'); // two proxies
    expect(clientAddress(req('10.0.0.1', '6.6.6.6, junk'), trusted)).to.equal('10.0.0.1'); // garbage ends the walk
    expect(clientAddress(req('10.0.0.1'), trusted)).to.equal('10.0.0.1');
  });

  it('per-IP limit counts and releases', () => {
    const l = new IpConnectionLimit(2);
    expect([l.acquire('a'), l.acquire('a'), l.acquire('a'), l.acquire('b')]).to.deep.equal([true, true, false, true]);
    l.release('a');
    expect(l.acquire('a')).to.equal(true);
    expect(new IpConnectionLimit(0).acquire('a')).to.equal(true);
  });
});

describe('security: rate limits on /ws (in-process worker)', () => {
  let worker: HeraldWorker;
  let base: string;
  const clients: TestClient[] = [];
  const start = async (options: WorkerOptions) => ({ worker, ws: base } = await startInProcess(options));
  const open = async (url = `${base}/ws`, opts?: object) => {
    const c = await TestClient.open(url, opts);
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker.close();
  });

  const rate = { framesPerSec: 10, framesBurst: 10, bytesPerSec: 1_000_000, bytesBurst: 1_000_000, errorsPerSec: 5, errorsBurst: 5, maxRefused: 1000 };

  it('answers every frame over the rate with rate_limited carrying its id, in order (the cap is for frames without id)', async () => {
    await start({ limits: { rate } });
    const c = await open();
    for (let id = 1; id <= 60; id++) c.send({ type: 'ping', id });
    await eventually(() => expect(c.of('error').length + c.of('pong').length).to.equal(60));
    const pongs = c.of('pong').map((f) => f.id);
    expect(pongs).to.deep.equal(Array.from({ length: pongs.length }, (_, i) => i + 1));
    expect(pongs.length).to.be.within(10, 12);
    const errors = c.of('error');
    expect(errors.every((e) => e.code === 'rate_limited')).to.equal(true);
    expect(errors[0]!.id).to.equal(pongs.length + 1);
    // 50 refused frames, each answered: the error cap applies only to frames without an id (issue 12.1).
    expect(errors.map((e) => e.id)).to.deep.equal(Array.from({ length: 60 - pongs.length }, (_, i) => pongs.length + 1 + i));
    // The connection stays and is served again once the bucket refills.
    await eventually(async () => {
      const id = 1000 + c.frames.length;
      c.send({ type: 'ping', id });
      await c.waitFrame((f) => f.type === 'pong' && f.id === id, 200);
    }, { timeout: 5000, interval: 100 });
  });

  it('limits bytes per connection', async () => {
    await start({ maxMessageBytes: 1024, limits: { rate: { ...rate, framesPerSec: 1000, framesBurst: 1000, bytesPerSec: 100, bytesBurst: 2000 } } });
    const c = await open();
    const big = 'x'.repeat(900);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await c.request({ type: 'publish', channel: 'room:b', data: big }));
    expect(answers.map((a) => a.type === 'ack' ? 'ack' : a.code)).to.deep.equal(['ack', 'ack', 'rate_limited']);
  });

  it('closes with 4029 on sustained abuse', async () => {
    await start({ limits: { rate: { ...rate, maxRefused: 20 } } });
    const c = await open();
    const other = await open();
    for (let i = 0; i < 200 && c.ws.readyState === WebSocket.OPEN; i++) c.send({ type: 'ping' });
    expect((await c.closed).code).to.equal(4029);
    other.send({ type: 'ping', id: 7 });
    await other.waitFrame((f) => f.type === 'pong');
  });

  it('counts protocol pings against the frame rate', async () => {
    await start({ limits: { rate: { ...rate, maxRefused: 20 } } });
    const c = await open();
    for (let i = 0; i < 200 && c.ws.readyState === WebSocket.OPEN; i++) c.ws.ping();
    expect((await c.closed).code).to.equal(4029);
  });

  it('caps connections per client address (429) and honours X-Forwarded-For only from trusted proxies', async () => {
    await start({ maxConnectionsPerIp: 2 });
    const a = await open();
    await open();
    const status = (opts?: object) => TestClient.connect(`${base}/ws`, opts).then((c) => (clients.push(c), 101), (e) => e.status as number);
    expect(await status()).to.equal(429);
    // Untrusted peers cannot dodge the cap with a forged header.
    expect(await status({ headers: { 'X-Forwarded-For': '203.0.113.9' } })).to.equal(429);
    await a.close();
    clients.splice(clients.indexOf(a), 1);
    await eventually(async () => expect(await status()).to.equal(101));
    await worker.close();

    await start({ maxConnectionsPerIp: 1, trustedProxies: ['127.0.0.1'] });
    expect(await status({ headers: { 'X-Forwarded-For': '203.0.113.1' } })).to.equal(101);
    expect(await status({ headers: { 'X-Forwarded-For': '203.0.113.1' } })).to.equal(429);
    expect(await status({ headers: { 'X-Forwarded-For': '203.0.113.2, 127.0.0.1' } })).to.equal(101);
  });

  it('refuses upgrades above the worker-wide upgrade rate with 503', async () => {
    await start({ maxUpgradesPerSec: 3 });
    const results = await Promise.all(Array.from({ length: 8 }, () => TestClient.connect(`${base}/ws`).then((c) => (clients.push(c), 101), (e) => e.status as number)));
    expect(results.filter((s) => s === 101).length).to.be.within(3, 4);
    expect(results.filter((s) => s === 503).length).to.be.within(4, 5);
  });
});

describe('security: upgrade flood (worker process)', () => {
  let worker: WorkerProcess | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
  });

  it('keeps serving established connections while thousands of upgrades arrive', async function () {
    this.timeout(60_000);
    worker = await startWorker({ HERALD_MAX_UPGRADES_PER_S: '500', HERALD_HANDSHAKE_TIMEOUT_MS: '2000' });
    const echo = await TestClient.connect(`${worker.wsUrl}/echo`);
    const ws = await TestClient.open(`${worker.wsUrl}/ws`);
    const outcomes = { switched: 0, refused: 0, other: 0 };
    const floodOne = () =>
      new Promise<void>((resolve) => {
        const s = connect(worker!.port, '127.0.0.1');
        s.on('error', () => undefined);
        let head = '';
        s.on('data', (d) => {
          head += d.toString('latin1');
          if (!head.includes('\r\n')) return;
          if (head.startsWith('HTTP/1.1 101')) outcomes.switched++;
          else if (head.startsWith('HTTP/1.1 503')) outcomes.refused++;
          else outcomes.other++;
          s.destroy();
        });
        s.on('close', () => resolve());
        s.on('connect', () => s.write(upgradeRequest(Math.random() < 0.5 ? '/ws' : '/echo')));
      });
    const done = () => outcomes.switched + outcomes.refused + outcomes.other >= 3000;
    const flooders = Array.from({ length: 100 }, async () => {
      while (!done()) await floodOne();
    });
    // Meanwhile the established clients keep getting echoes and pongs, promptly.
    const latencies: number[] = [];
    for (let i = 0; !done(); i++) {
      const t0 = Date.now();
      echo.ws.send(Buffer.from(`echo-${i}`));
      ws.send({ type: 'ping', id: i + 1 });
      await new Promise<void>((resolve) => echo.ws.once('message', () => resolve()));
      await ws.waitFrame((f) => f.type === 'pong' && f.id === i + 1, 5000);
      latencies.push(Date.now() - t0);
      // A probe every 25 ms keeps this client well inside its own frame rate limit.
      await delay(25);
    }
    await Promise.all(flooders);
    expect(latencies.length).to.be.above(10);
    const total = outcomes.switched + outcomes.refused + outcomes.other;
    expect(total, JSON.stringify(outcomes)).to.be.above(1000);
    expect(outcomes.refused, JSON.stringify(outcomes)).to.be.above(0);
    expect(outcomes.other).to.equal(0);
    latencies.sort((a, b) => a - b);
    if (process.env.HERALD_TEST_VERBOSE) console.log(outcomes, latencies);
    expect(latencies[Math.floor(latencies.length * 0.9)], `latencies ${latencies}`).to.be.below(1000);
    await echo.close();
    await ws.close();
  });
});
