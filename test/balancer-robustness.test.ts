import { expect } from 'chai';
import { once } from 'node:events';
import net from 'node:net';
import { WebSocket } from 'ws';
import { pickWorker } from '@herald/balancer';
import { TestClient, eventually, startRedis, startWorker, type TestRedis, type WorkerProcess } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';
import { RawSocket, buildFrame, upgradeRequest as rawUpgradeRequest } from './helpers/raw-ws.js';

/** A raw upgrade request, so a test controls exactly when the client goes away. */
function upgradeRequest(path: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
  );
}

async function rawConnect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

/** An /echo connection that must keep working while other connections fail. */
async function bystander(url: string): Promise<{ ws: WebSocket; check(): Promise<void> }> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  await once(ws, 'open');
  return {
    ws,
    async check() {
      const text = `still-here-${Math.random()}`;
      ws.send(text);
      const [data] = (await once(ws, 'message')) as [Buffer];
      expect(data.toString()).to.equal(text);
    },
  };
}

// Every case runs on both data planes of open tunnels: the native relay thread and Node's pipes.
for (const relay of ['native', 'js'] as const) {
  describe(`balancer robustness (redis, 3 workers, fd counts, relay: ${relay})`, function () {
    this.timeout(60_000);

    let redis: TestRedis;
    let prefix: string;
    let testNo = 0;
    let workers: WorkerProcess[] = [];
    let balancer: BalancerProcess;
    let baseline: number;
    const extra: BalancerProcess[] = [];
    const sockets: Array<{ terminate?(): void; destroy?(): void }> = [];
    const stopped: number[] = [];

    const address = (w: WorkerProcess) => `127.0.0.1:${w.port}`;
    /** A session id whose owner (by the balancer's rendezvous hashing) is `worker`. */
    function keyOwnedBy(worker: WorkerProcess, tag: string): string {
      const all = workers.map(address);
      for (let i = 0; ; i++) {
        const key = `${tag}-${i}`;
        if (pickWorker(key, all) === address(worker)) return key;
      }
    }

    async function fdsBackToBaseline(b = balancer, base = baseline): Promise<void> {
      await eventually(() => expect(b.fds(), 'balancer open fds').to.be.at.most(base), { timeout: 8000, interval: 50 });
    }

    /**
     * The balancer's resting fd count: the lowest of a few readings, since a health check in
     * flight briefly holds one more socket.
     */
    async function settledFds(b: BalancerProcess): Promise<number> {
      const readings: number[] = [];
      await eventually(
        () => {
          readings.push(b.fds());
          if (readings.length < 10) throw new Error('more readings');
        },
        { timeout: 5000, interval: 30 },
      );
      return Math.min(...readings);
    }

    /** Discovery settings for a balancer of this test: the workers' own membership records. */
    const discovery = () => ({ REDIS_URL: redis.url, HERALD_REDIS_PREFIX: prefix });
    /** A balancer of this test: discovery plus the data plane under test. */
    const balancerEnv = () => ({ ...discovery(), HERALD_RELAY: relay });

    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.stop();
    });

    beforeEach(async () => {
      prefix = `rob${++testNo}-${process.pid}:`;
      workers = await Promise.all([0, 1, 2].map(() => startWorker(discovery())));
      balancer = await startBalancer(balancerEnv());
      await eventually(async () => expect((await balancer.status()).healthy).to.equal(3), { timeout: 10_000 });
      expect((await balancer.status()).relay).to.equal(relay);
      baseline = await settledFds(balancer);
    });

    afterEach(async () => {
      for (const pid of stopped.splice(0)) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // already gone
        }
      }
      for (const s of sockets.splice(0)) (s.terminate ?? s.destroy)?.call(s);
      await Promise.all(extra.splice(0).map((b) => b.stop('SIGKILL')));
      await balancer.stop('SIGKILL');
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    });

    it('a client reset mid-handshake ends that connection only and releases its sockets', async () => {
      const [w0, w1] = workers as [WorkerProcess, WorkerProcess];
      // A balancer whose health checks all ran before the freeze: a check in flight to the frozen
      // worker would hold one more socket and make the fd count depend on timing.
      const quiet = await startBalancer({ ...balancerEnv(), HERALD_HEALTH_INTERVAL_MS: '600000', HERALD_HEALTH_RISE: '1' });
      extra.push(quiet);
      await eventually(async () => expect((await quiet.status()).healthy).to.equal(3), { timeout: 10_000 });
      const balancer = quiet;
      const baseline = await settledFds(quiet);
      const fdsBackToBaseline = (base = baseline) =>
        eventually(() => expect(quiet.fds(), 'balancer open fds').to.be.at.most(base), { timeout: 8000, interval: 50 });
      const other = await bystander(`${balancer.wsUrl}/echo?sid=${keyOwnedBy(w1, 'by')}`);
      sockets.push(other.ws);
      // Freeze the owner so the upgrade stays pending at the worker.
      process.kill(w0.child.pid, 'SIGSTOP');
      stopped.push(w0.child.pid);
      const raw = await rawConnect(balancer.port);
      raw.write(upgradeRequest(`/ws?sid=${keyOwnedBy(w0, 'reset')}`));
      // The bystander's tunnel plus the pending one.
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(2));
      expect(balancer.fds()).to.be.greaterThan(baseline);
      raw.resetAndDestroy();
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(1));
      // Still frozen: the balancer must have dropped its pending connection to the worker itself.
      // (+2: the bystander's client and worker sockets.)
      await fdsBackToBaseline(baseline + 2);
      process.kill(w0.child.pid, 'SIGCONT');
      await other.check();
      other.ws.close();
      await once(other.ws, 'close');
      await fdsBackToBaseline();
      expect(balancer.child.proc.exitCode).to.equal(null);
    });

    it('garbage before the upgrade gets 400 and the socket is closed', async () => {
      const raw = await rawConnect(balancer.port);
      raw.write('HELLO THERE\r\n\r\n');
      const chunks: Buffer[] = [];
      raw.on('data', (c: Buffer) => chunks.push(c));
      await once(raw, 'close');
      expect(Buffer.concat(chunks).toString()).to.match(/^HTTP\/1\.1 400 /);
      const h2c = await rawConnect(balancer.port);
      h2c.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
      const reply: Buffer[] = [];
      h2c.on('data', (c: Buffer) => reply.push(c));
      await once(h2c, 'close');
      expect(Buffer.concat(reply).toString()).to.match(/^HTTP\/1\.1 400 /);
      await fdsBackToBaseline();
    });

    it('a client that never finishes its request head is dropped after the handshake timeout (408)', async () => {
      const quick = await startBalancer({ ...balancerEnv(), HERALD_HANDSHAKE_TIMEOUT_MS: '300' });
      extra.push(quick);
      await eventually(async () => expect((await quick.status()).healthy).to.equal(3), { timeout: 10_000 });
      const base = await settledFds(quick);
      const raw = await rawConnect(quick.port);
      raw.write('GET /ws?sid=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
      const reply: Buffer[] = [];
      raw.on('data', (c: Buffer) => reply.push(c));
      const started = Date.now();
      await once(raw, 'close');
      expect(Date.now() - started).to.be.below(5000);
      expect(Buffer.concat(reply).toString()).to.match(/^HTTP\/1\.1 408 /);
      await fdsBackToBaseline(quick, base);
    });

    it('a worker refusing the upgrade: its answer reaches the client, that connection ends, sockets are freed', async () => {
      const other = await bystander(`${balancer.wsUrl}/echo?sid=x`);
      sockets.push(other.ws);
      for (let i = 0; i < 5; i++) {
        const error = (await TestClient.connect(`${balancer.wsUrl}/nowhere?sid=${i}`).catch((e: unknown) => e)) as { status?: number };
        expect(error.status).to.equal(404);
      }
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(1));
      await other.check();
      other.ws.close();
      await once(other.ws, 'close');
      await fdsBackToBaseline();
    });

    it('a worker failing mid-handshake (killed): the upgrade is retried on the next worker', async () => {
      const [w0] = workers as [WorkerProcess];
      process.kill(w0.child.pid, 'SIGSTOP');
      stopped.push(w0.child.pid);
      const pending = TestClient.open(`${balancer.wsUrl}/ws?sid=${keyOwnedBy(w0, 'kill')}`);
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(1));
      await w0.stop('SIGKILL');
      const c = await pending;
      expect(c.welcome!.node).to.not.equal(w0.node);
      await c.close();
      await fdsBackToBaseline();
    });

    it('a worker that does not answer the upgrade in time: 504, and sockets are freed', async () => {
      const quick = await startBalancer({ ...balancerEnv(), HERALD_HANDSHAKE_TIMEOUT_MS: '300', HERALD_HEALTH_TIMEOUT_MS: '5000' });
      extra.push(quick);
      await eventually(async () => expect((await quick.status()).healthy).to.equal(3), { timeout: 10_000 });
      const base = await settledFds(quick);
      const [w0] = workers as [WorkerProcess];
      process.kill(w0.child.pid, 'SIGSTOP');
      stopped.push(w0.child.pid);
      const error = (await TestClient.connect(`${quick.wsUrl}/ws?sid=${keyOwnedBy(w0, 'slow')}`).catch((e: unknown) => e)) as { status?: number };
      expect(error.status).to.equal(504);
      process.kill(w0.child.pid, 'SIGCONT');
      await fdsBackToBaseline(quick, base);
    });

    it('a worker killed mid-stream ends its own connections only', async () => {
      const [w0, w1] = workers as [WorkerProcess, WorkerProcess];
      const victims = await Promise.all([0, 1, 2].map((i) => TestClient.open(`${balancer.wsUrl}/ws?sid=${keyOwnedBy(w0, `victim${i}`)}`)));
      const other = await bystander(`${balancer.wsUrl}/echo?sid=${keyOwnedBy(w1, 'safe')}`);
      sockets.push(other.ws, ...victims.map((v) => v.ws));
      expect(victims.every((v) => v.welcome!.node === w0.node)).to.equal(true);
      await w0.stop('SIGKILL');
      for (const v of victims) expect((await v.closed).code).to.equal(1006);
      await other.check();
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(1));
      other.ws.close();
      await once(other.ws, 'close');
      await fdsBackToBaseline();
    });

    it('a frame sent in the same packet as the upgrade request crosses the tunnel', async () => {
      const raw = await RawSocket.open(balancer.port);
      sockets.push(raw);
      raw.write(Buffer.concat([Buffer.from(rawUpgradeRequest('/echo?sid=head')), buildFrame({ opcode: 0x1, payload: 'sent with the request' })]));
      await eventually(() => expect(raw.frames.map((f) => f.payload.toString())).to.include('sent with the request'));
      expect(raw.head).to.match(/^HTTP\/1\.1 101/);
      raw.write(buildFrame({ opcode: 0x1, payload: 'and after' }));
      await eventually(() => expect(raw.frames.map((f) => f.payload.toString())).to.include('and after'));
    });

    it('many connections opened, closed or dropped leave no descriptor behind', async () => {
      const open = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const ws = new WebSocket(`${balancer.wsUrl}/echo?sid=many-${i}`);
          ws.on('error', () => undefined);
          await once(ws, 'open');
          return ws;
        }),
      );
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(60));
      expect(balancer.fds()).to.be.at.least(baseline + 120);
      open.forEach((ws, i) => (i % 2 === 0 ? ws.close() : ws.terminate()));
      await eventually(async () => expect((await balancer.status()).connections.tunnels).to.equal(0));
      await fdsBackToBaseline();
    });

    it('caps WebSocket connections per client address (429) and frees the slot on close', async () => {
      const capped = await startBalancer({ ...balancerEnv(), HERALD_MAX_CONNECTIONS_PER_IP: '2' });
      extra.push(capped);
      await eventually(async () => expect((await capped.status()).healthy).to.equal(3), { timeout: 10_000 });
      const base = await settledFds(capped);
      const a = await TestClient.open(`${capped.wsUrl}/ws?sid=a`);
      const b = await TestClient.open(`${capped.wsUrl}/ws?sid=b`);
      sockets.push(a.ws, b.ws);
      const refused = (await TestClient.connect(`${capped.wsUrl}/ws?sid=c`).catch((e: unknown) => e)) as { status?: number };
      expect(refused.status).to.equal(429);
      await a.close();
      // The balancer frees the slot when its side of the tunnel has closed too, which can come a
      // moment after the client saw its own close.
      const c = await eventually(() => TestClient.open(`${capped.wsUrl}/ws?sid=c`));
      await Promise.all([b.close(), c.close()]);
      await fdsBackToBaseline(capped, base);
    });

    it('caps WebSocket tunnels in total (503 over_capacity)', async () => {
      const capped = await startBalancer({ ...balancerEnv(), HERALD_MAX_CONNECTIONS: '3' });
      extra.push(capped);
      await eventually(async () => expect((await capped.status()).healthy).to.equal(3), { timeout: 10_000 });
      const base = await settledFds(capped);
      const open = await Promise.all([0, 1, 2].map((i) => TestClient.open(`${capped.wsUrl}/ws?sid=t${i}`)));
      sockets.push(...open.map((c) => c.ws));
      const refused = (await TestClient.connect(`${capped.wsUrl}/ws?sid=t9`).catch((e: unknown) => e)) as { status?: number };
      expect(refused.status).to.equal(503);
      await Promise.all(open.map((c) => c.close()));
      // The client sees its close before the balancer (the relay thread, or the JS pipes) has
      // counted the tunnel out: wait for the count, which is what frees a slot.
      await eventually(async () => expect((await capped.status()).connections.tunnels).to.equal(0), { timeout: 10_000 });
      const again = await TestClient.open(`${capped.wsUrl}/ws?sid=t9`);
      await again.close();
      await fdsBackToBaseline(capped, base);
    });

    it('drains on SIGTERM: closes open tunnels, refuses new connections, exits 0 within the drain time', async () => {
      const clients = await Promise.all([0, 1, 2, 3, 4].map((i) => TestClient.open(`${balancer.wsUrl}/ws?sid=d${i}`)));
      const started = Date.now();
      const exit = balancer.stop('SIGTERM');
      for (const c of clients) await c.closed;
      expect(await exit).to.deep.equal({ code: 0, signal: null });
      // HERALD_DRAIN_MS is 1000 in these tests.
      expect(Date.now() - started).to.be.below(3000);
      const error = (await TestClient.connect(`${balancer.wsUrl}/ws`).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      expect(error.code).to.equal('ECONNREFUSED');
      for (const w of workers) expect(w.child.proc.exitCode).to.equal(null);
    });
  });
}
