import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { nativeRelay, socketFd, type Relay, type RelayEnd } from '@herald/relay';
import { connectedPair, eventually } from './helpers/index.js';

/** Two connected TCP pairs on loopback; the middle sockets are what a balancer would hold. */
interface Pairs {
  /** The test's client end, and the balancer's socket towards it. */
  client: net.Socket;
  clientSide: net.Socket;
  /** The balancer's socket towards the worker, and the test's worker end. */
  workerSide: net.Socket;
  worker: net.Socket;
}

async function pairs(): Promise<Pairs> {
  const [client, clientSide] = await connectedPair();
  const [workerSide, worker] = await connectedPair();
  return { client, clientSide, workerSide, worker };
}

/** Hands the middle sockets over, the way the balancer's tunnel does, and returns the end report. */
function handOver(relay: Relay, p: Pairs, toClient?: Buffer, toWorker?: Buffer): { id: number; ended: Promise<[RelayEnd, number]> } {
  let id = -1;
  const ended = new Promise<[RelayEnd, number]>((resolve) => {
    id = relay.add(p.clientSide, p.workerSide, toClient, toWorker, (end, errno) => resolve([end, errno]));
  });
  p.clientSide.destroy();
  p.workerSide.destroy();
  return { id, ended };
}

/** Reads exactly `n` bytes from a socket, then pauses it again (extra bytes are put back). */
function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const stop = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got < n) return;
      stop();
      const all = Buffer.concat(chunks);
      if (all.length > n) socket.unshift(all.subarray(n));
      resolve(all.subarray(0, n));
    };
    const onEnd = () => {
      stop();
      reject(new Error(`stream ended or closed after ${got} of ${n} bytes`));
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

/** Resolves when the peer has closed the socket (reads and drops anything left). */
async function ended(socket: net.Socket): Promise<void> {
  if (socket.readableEnded) return;
  const end = once(socket, 'end');
  socket.resume();
  await end;
}

const fds = () => readdirSync('/proc/self/fd').length;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('native relay (in-process, real sockets)', function () {
  this.timeout(30_000);
  let relay: Relay;
  const open: net.Socket[] = [];

  before(function () {
    const loaded = nativeRelay();
    // CI builds it (.ci/run installs g++/make/python3); a machine without a C compiler does not,
    // and the balancer then runs on its JS data plane: skip, saying why.
    if ('error' in loaded) {
      console.log(`      skipped: the native relay is not available (${loaded.error})`);
      this.skip();
    }
    relay = loaded.relay;
  });

  it('reads the descriptor of a connected socket (the one private Node field it relies on)', async () => {
    const p = await pairs();
    open.push(p.client, p.worker);
    expect(socketFd(p.client)).to.be.a('number').and.at.least(0);
    expect(socketFd(p.worker)).to.be.at.least(0);
    p.client.destroy();
    await once(p.client, 'close');
    expect(socketFd(p.client)).to.equal(-1);
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.destroy();
  });

  async function tunnel(toClient?: Buffer, toWorker?: Buffer) {
    const p = await pairs();
    open.push(p.client, p.worker);
    return { ...p, ...handOver(relay, p, toClient, toWorker) };
  }

  it('moves bytes both ways, the bytes JavaScript had already read first', async () => {
    const t = await tunnel(Buffer.from('early-to-client|'), Buffer.from('early-to-worker|'));
    t.client.write('hello worker');
    t.worker.write('hello client');
    expect((await readBytes(t.worker, 28)).toString()).to.equal('early-to-worker|hello worker');
    expect((await readBytes(t.client, 28)).toString()).to.equal('early-to-client|hello client');
  });

  it('the worker ending closes the client after its last bytes, and reports the worker', async () => {
    const before = fds();
    const t = await tunnel();
    t.worker.end('goodbye');
    expect((await readBytes(t.client, 7)).toString()).to.equal('goodbye');
    await ended(t.client);
    expect(await t.ended).to.deep.equal(['worker', 0]);
    await eventually(() => expect(fds()).to.be.at.most(before + 2)); // the test's own two ends remain
  });

  it('the client ending closes the worker and reports the client', async () => {
    const t = await tunnel();
    t.client.end();
    await ended(t.worker);
    expect(await t.ended).to.deep.equal(['client', 0]);
  });

  it('a reset is reported with its errno and closes the other side', async () => {
    const t = await tunnel();
    t.worker.resetAndDestroy();
    const [end, errno] = await t.ended;
    expect(end).to.equal('worker');
    expect(errno).to.be.greaterThan(0);
    await ended(t.client);
  });

  it('a clean end reaches the other side intact even with traffic backed up the other way', async () => {
    const t = await tunnel();
    // The client sends 16 MiB the worker never reads: the relay holds the client back.
    t.worker.pause();
    t.client.write(randomBytes(16 * 1024 * 1024));
    // The worker's last 8 MiB and its end; the client reads them all and sees a clean end.
    const last = randomBytes(8 * 1024 * 1024);
    let reset: Error | undefined;
    t.client.on('error', (error) => (reset = error));
    t.worker.end(last);
    const received = await readBytes(t.client, last.length);
    expect(sha(received)).to.equal(sha(last));
    await ended(t.client);
    expect(reset).to.equal(undefined);
    expect(await t.ended).to.deep.equal(['worker', 0]);
  });

  it('a side that never ends after its peer did is closed after the linger time (no ghost)', async () => {
    const [client, clientSide] = await connectedPair();
    const [workerSide, worker] = await connectedPair();
    open.push(client, worker);
    // A client that does not close its side when the worker's end arrives.
    client.allowHalfOpen = true;
    const t = handOver(relay, { client, clientSide, workerSide, worker });
    worker.end();
    await ended(client);
    expect(client.writable).to.equal(true);
    expect(await t.ended).to.deep.equal(['worker', 0]);
  });

  it('an old id does not close the tunnel that reuses its slot', async () => {
    const old = await tunnel();
    relay.close(old.id);
    await old.ended;
    const reused = await tunnel();
    expect(reused.id % 2 ** 24, 'same slot').to.equal(old.id % 2 ** 24);
    expect(reused.id).to.not.equal(old.id);
    let reusedEnded = false;
    void reused.ended.then(() => (reusedEnded = true));
    relay.close(old.id);
    relay.close(Number.NaN);
    relay.close(-1);
    // Commands run in order: once a later close is reported, the stale one has been handled.
    const marker = await tunnel();
    relay.close(marker.id);
    await marker.ended;
    expect(reusedEnded).to.equal(false);
    reused.client.write('still here');
    expect((await readBytes(reused.worker, 10)).toString()).to.equal('still here');
  });

  it('close(id) closes both sockets, reports `closed`, and ignores a second call', async () => {
    const t = await tunnel();
    relay.close(t.id);
    expect(await t.ended).to.deep.equal(['closed', 0]);
    await Promise.all([ended(t.client), ended(t.worker)]);
    relay.close(t.id);
  });

  it('holds back a fast sender while the receiver does not read, and loses nothing', async () => {
    const t = await tunnel();
    const payload = randomBytes(32 * 1024 * 1024);
    t.worker.pause();
    t.client.write(payload);
    // The relay stops reading once the worker side refuses bytes: the client's own buffer then
    // stops shrinking, with most of the payload still in it.
    let last = -1;
    await eventually(
      () => {
        const now = t.client.writableLength;
        const settled = now === last;
        last = now;
        if (!settled) throw new Error('still moving');
      },
      { timeout: 10_000, interval: 200 },
    );
    expect(t.client.writableLength).to.be.greaterThan(8 * 1024 * 1024);
    const received = await readBytes(t.worker, payload.length);
    expect(sha(received)).to.equal(sha(payload));
  });

  it('grows past its first 1,024 tunnel slots, reuses them, and gives every descriptor back', async () => {
    const before = fds();
    const open = async (count: number) => {
      const batch: Array<Awaited<ReturnType<typeof tunnel>>> = [];
      for (let i = 0; i < count; i += 100) batch.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => tunnel()))));
      return batch;
    };
    const first = await open(1100);
    const second = await open(50);
    const all = [...first, ...second];
    expect(new Set(all.map((t) => t.id)).size).to.equal(all.length);
    await Promise.all(all.map(async (t, i) => {
      t.client.write(`c${i}`);
      t.worker.write(`w${i}`);
      expect((await readBytes(t.worker, `c${i}`.length)).toString()).to.equal(`c${i}`);
      expect((await readBytes(t.client, `w${i}`.length)).toString()).to.equal(`w${i}`);
    }));
    for (const t of first) t.client.destroy();
    expect((await Promise.all(first.map((t) => t.ended))).every(([end]) => end === 'client')).to.equal(true);
    // Slots freed by the first batch are reused under new ids; ids still in use stay unique.
    const third = await open(50);
    const live = new Set([...second, ...third].map((t) => t.id));
    expect(live.size).to.equal(100);
    for (const t of [...second, ...third]) relay.close(t.id);
    await Promise.all([...second, ...third].map((t) => t.ended));
    for (const t of all.concat(third)) t.worker.destroy();
    await eventually(() => expect(fds()).to.be.at.most(before), { timeout: 10_000, interval: 50 });
  });

  it('carries many tunnels at once without mixing their bytes', async () => {
    const tunnels = await Promise.all(Array.from({ length: 50 }, () => tunnel()));
    const sent = tunnels.map(() => randomBytes(64 * 1024));
    tunnels.forEach((t, i) => t.client.write(sent[i]));
    const got = await Promise.all(tunnels.map((t) => readBytes(t.worker, 64 * 1024)));
    got.forEach((b, i) => expect(b.equals(sent[i]!)).to.equal(true));
    tunnels.forEach((t) => relay.close(t.id));
    await Promise.all(tunnels.map((t) => t.ended));
  });
});
