import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { NO_RATE_LIMITS, type HeraldWorker } from '@herald/server';
import { TestClient, startInProcess, eventually } from './helpers/index.js';

async function metric(http: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`) && !l.startsWith('#'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(out));
  });
}

describe('worker: limits and bad input', () => {
  let worker: HeraldWorker;
  let base: string;
  let http: string;
  let port: number;
  const clients: TestClient[] = [];
  const open = async (query = '', opts?: ConstructorParameters<typeof WebSocket>[2]) => {
    const c = await TestClient.open(`${base}/ws${query}`, opts as never);
    clients.push(c);
    return c;
  };
  const start = async (options: Parameters<typeof startInProcess>[0] = {}) => {
    await worker?.close();
    ({ worker, ws: base, http, port } = await startInProcess(options));
  };

  beforeEach(() => start({ maxMessageBytes: 4096 }));
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker.close();
  });

  it('closes with 1009 on a frame above the message limit', async () => {
    const a = await open();
    a.send({ type: 'publish', channel: 'x', data: 'y'.repeat(5000) });
    expect((await a.closed).code).to.equal(1009);
  });

  it('answers each class of bad frame with an error and keeps the connection', async () => {
    const a = await open();
    const cases: Array<[unknown, string]> = [
      ['not json', 'invalid JSON'],
      ['[1,2]', 'JSON object'],
      [{ id: 5 }, '"type"'],
      [{ type: 'launch', id: 6 }, 'unknown type'],
      [{ type: 'subscribe', channel: 42, id: 7 }, '"channel"'],
      [{ type: 'subscribe', channel: 'bad channel!', id: 8 }, 'invalid channel'],
      [{ type: 'publish', channel: 'a', id: 9 }, '"data"'],
      [{ type: 'send', user: 7, data: 1, id: 10 }, '"user"'],
      [{ type: 'subscribe', channel: 'a', since: { offset: 'x' }, id: 11 }, '"since"'],
    ];
    for (const [frame, message] of cases) {
      const before = a.of('error').length;
      a.send(frame);
      await a.waitCount(() => a.of('error').length, before + 1);
      const err = a.of('error').at(-1)!;
      expect(err.code, JSON.stringify(frame)).to.equal('bad_request');
      expect(err.message).to.include(message);
      const id = typeof frame === 'object' ? (frame as { id?: number }).id : undefined;
      if (id !== undefined) expect(err.id).to.equal(id);
    }
    for (const bin of [Buffer.from([2, 0, 1, 97]), Buffer.from([1, 0]), Buffer.from([1, 0, 9, 97])]) {
      const before = a.of('error').length;
      a.ws.send(bin);
      await a.waitCount(() => a.of('error').length, before + 1);
      expect(a.of('error').at(-1)).to.deep.include({ code: 'bad_request' });
    }
    expect(await a.request({ type: 'subscribe', channel: 'still:ok' })).to.deep.include({ type: 'ack' });
  });

  it('counts every frame written to a client in herald_frames_sent_total', async () => {
    const before = await metric(http, 'herald_frames_sent_total');
    const [a, b] = [await open(), await open()];
    await a.waitFrame((f) => f.type === 'welcome');
    await b.waitFrame((f) => f.type === 'welcome');
    await a.request({ type: 'subscribe', channel: 'room' });
    await b.request({ type: 'subscribe', channel: 'room' });
    for (let i = 0; i < 5; i++) await a.request({ type: 'publish', channel: 'room', data: i });
    await eventually(() => expect(b.frames.filter((f) => f.type === 'message')).to.have.length(5));
    await eventually(() => expect(a.frames.filter((f) => f.type === 'message')).to.have.length(5));
    // Every frame either client got (welcomes, answers, joins, messages), counted once each.
    const got = a.frames.length + b.frames.length;
    expect(got).to.be.at.least(2 + 2 + 5 + 10);
    expect(await metric(http, 'herald_frames_sent_total')).to.equal(before + got);
  });

  it('keeps other connections unaffected by a misbehaving one', async () => {
    const [bad, good] = [await open(), await open()];
    await good.request({ type: 'subscribe', channel: 'room' });
    for (let i = 0; i < 50; i++) bad.send('{{{');
    bad.send({ type: 'publish', channel: 'room', data: 'x'.repeat(10_000) });
    expect((await bad.closed).code).to.equal(1009);
    await good.request({ type: 'publish', channel: 'room', data: 'fine' });
    expect((await good.waitFrame((f) => f.type === 'message')).data).to.equal('fine');
  });

  it('terminates a peer that stops answering pings', async () => {
    await start({ heartbeatMs: 100 });
    const alive = await open();
    const silent = await open('', { autoPong: false });
    const { code } = await silent.closed;
    expect(code).to.equal(1006);
    // The answering peer got several pings over the same time and is still open.
    let pings = 0;
    alive.ws.on('ping', () => pings++);
    await eventually(() => expect(pings).to.be.at.least(2));
    expect(alive.ws.readyState).to.equal(WebSocket.OPEN);
  });

  it('closes a slow consumer with 4008 and stops buffering for it', async () => {
    // The publisher floods on purpose: per-connection rate limits off.
    await start({ limits: { sendBufferBytes: 64 * 1024, closeGraceMs: 30_000, rate: NO_RATE_LIMITS } });
    const slow = await open();
    await slow.request({ type: 'subscribe', channel: 'firehose' });
    // Stop reading: the kernel buffers fill, then the worker's send buffer grows.
    (slow.ws as unknown as { _socket: Socket })._socket.pause();
    const pub = await open();
    const chunk = 'z'.repeat(3500);
    let sent = 0;
    while ((await metric(http, 'herald_server_closes_total', '{code="4008"}')) === 0) {
      await Promise.all(Array.from({ length: 50 }, () => pub.request({ type: 'publish', channel: 'firehose', data: chunk })));
      sent += 50;
      expect(sent, 'the worker never closed the slow consumer').to.be.below(20_000);
    }
    // More publishes are not buffered for the closing connection.
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 50 }, () => pub.request({ type: 'publish', channel: 'firehose', data: chunk })));
    expect(process.memoryUsage().rss - rssBefore).to.be.below(20 * 1024 * 1024);
    (slow.ws as unknown as { _socket: Socket })._socket.resume();
    expect((await slow.closed).code).to.equal(4008);
    expect(pub.ws.readyState).to.equal(WebSocket.OPEN);
  });

  it('refuses upgrades above the connection limit with 503', async () => {
    await start({ maxConnections: 2 });
    await open();
    await open();
    const err = await TestClient.connect(`${base}/ws`).catch((e) => e);
    expect(err.status).to.equal(503);
  });

  it('answers unknown upgrade paths with 404', async () => {
    const err = await TestClient.connect(`${base}/nope`).catch((e) => e);
    expect(err.status).to.equal(404);
  });

  it('drops a client that trickles its upgrade headers past the handshake timeout', async () => {
    await start({ handshakeTimeoutMs: 300 });
    const socket = await rawConnect(port);
    const done = readAll(socket);
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
    const started = Date.now();
    const reply = await done;
    expect(Date.now() - started).to.be.below(3000);
    expect(reply === '' || reply.startsWith('HTTP/1.1 408')).to.equal(true, reply);
    const ok = await open();
    expect(ok.welcome).to.not.equal(undefined);
  });

  it('answers garbage before the upgrade with 400 and keeps serving', async () => {
    const socket = await rawConnect(port);
    const done = readAll(socket);
    socket.write('\x00\x01\x02 garbage \xff\r\n\r\n');
    expect(await done).to.match(/^HTTP\/1\.1 400/);
    const ok = await open();
    expect(ok.welcome).to.not.equal(undefined);
  });

  it('answers oversized headers with 431', async () => {
    const socket = await rawConnect(port);
    const done = readAll(socket);
    socket.write(`GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(await done).to.match(/^HTTP\/1\.1 431/);
  });
});
