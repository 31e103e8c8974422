import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { deflateRawSync, constants as zlib } from 'node:zlib';
import { RawSocket, buildFrame, closePayload, upgradeRequest, startWorker, TestClient, type RawFrame, type WorkerProcess } from './helpers/index.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const PING = 0x9;

/** Resident set size of a process, in bytes (Linux). */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** A raw frame with a 64-bit length field claiming `len` bytes, and no payload. */
function hugeLengthHeader(len: bigint): Buffer {
  const b = Buffer.alloc(14);
  b[0] = 0x80 | BINARY;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(len, 2);
  return b; // 4 mask bytes of zero follow
}

interface Case {
  name: string;
  bytes: () => Buffer;
  /** Acceptable outcomes: close codes, or 'dropped' for a socket ended without a close frame. */
  expect: Array<number | 'dropped'>;
}

const f = (x: RawFrame) => buildFrame(x);
const invalidUtf8 = Buffer.from([0x68, 0x69, 0xc3, 0x28, 0xff, 0xfe]);

const FRAME_CASES: Case[] = [
  { name: 'RSV1 set without permessage-deflate', bytes: () => f({ opcode: TEXT, rsv: 4, payload: '{"type":"ping"}' }), expect: [1002] },
  { name: 'RSV2 set', bytes: () => f({ opcode: TEXT, rsv: 2, payload: 'x' }), expect: [1002] },
  { name: 'RSV3 set on a ping', bytes: () => f({ opcode: PING, rsv: 1 }), expect: [1002] },
  { name: 'unknown data opcode 0x3', bytes: () => f({ opcode: 0x3, payload: 'x' }), expect: [1002] },
  { name: 'unknown control opcode 0xB', bytes: () => f({ opcode: 0xb }), expect: [1002] },
  { name: 'unmasked client frame', bytes: () => f({ opcode: TEXT, mask: false, payload: '{"type":"ping"}' }), expect: [1002] },
  { name: 'oversized control frame (ping of 126 bytes)', bytes: () => f({ opcode: PING, payload: Buffer.alloc(126) }), expect: [1002] },
  { name: 'fragmented control frame', bytes: () => f({ opcode: PING, fin: false, payload: 'a' }), expect: [1002] },
  { name: 'continuation without a first fragment', bytes: () => f({ opcode: CONT, payload: 'x' }), expect: [1002] },
  { name: 'new message inside a fragmented one', bytes: () => Buffer.concat([f({ opcode: TEXT, fin: false, payload: '{' }), f({ opcode: TEXT, payload: '}' })]), expect: [1002] },
  { name: 'invalid UTF-8 in a text frame', bytes: () => f({ opcode: TEXT, payload: invalidUtf8 }), expect: [1007] },
  { name: 'invalid UTF-8 across fragments', bytes: () => Buffer.concat([f({ opcode: TEXT, fin: false, payload: Buffer.from([0xe2, 0x82]) }), f({ opcode: CONT, payload: Buffer.from([0x28]) })]), expect: [1007] },
  { name: 'invalid UTF-8 in a close reason', bytes: () => f({ opcode: CLOSE, payload: closePayload(1000, invalidUtf8) }), expect: [1007] },
  { name: 'invalid close code 1005', bytes: () => f({ opcode: CLOSE, payload: closePayload(1005) }), expect: [1002] },
  { name: 'invalid close code 999', bytes: () => f({ opcode: CLOSE, payload: closePayload(999) }), expect: [1002] },
  { name: 'invalid close code 5000', bytes: () => f({ opcode: CLOSE, payload: closePayload(5000) }), expect: [1002] },
  { name: 'close payload of one byte', bytes: () => f({ opcode: CLOSE, payload: Buffer.from([3]) }), expect: [1002] },
  { name: 'text frame above the message limit', bytes: () => f({ opcode: TEXT, payload: Buffer.alloc(70_000, 0x61) }), expect: [1009] },
  { name: 'fragments adding up above the message limit', bytes: () => Buffer.concat(Array.from({ length: 5 }, (_, i) => f({ opcode: i ? CONT : BINARY, fin: false, payload: Buffer.alloc(16_000) }))), expect: [1009] },
  { name: 'a 2^53 byte length announced', bytes: () => hugeLengthHeader(2n ** 53n), expect: [1009, 1002] },
  { name: 'a 64-bit length with the top bit set', bytes: () => hugeLengthHeader(2n ** 63n + 5n), expect: [1009, 1002] },
  { name: 'a flood of tiny fragments', bytes: () => Buffer.concat([f({ opcode: TEXT, fin: false, payload: 'a' }), ...Array.from({ length: 5000 }, () => f({ opcode: CONT, fin: false, payload: 'a' }))]), expect: [1008, 1009] },
  { name: 'a flood of empty fragments', bytes: () => Buffer.concat([f({ opcode: BINARY, fin: false }), ...Array.from({ length: 5000 }, () => f({ opcode: CONT, fin: false }))]), expect: [1008] },
];

describe('hostile input (worker process)', function () {
  this.timeout(60_000);
  let worker: WorkerProcess;
  let bystander: TestClient;
  let pingId = 0;
  /** Proves another client is still served. */
  const served = async () => {
    const id = ++pingId;
    bystander.send({ type: 'ping', id });
    await bystander.waitFrame((fr) => fr.type === 'pong' && fr.id === id, 3000);
  };

  before(async () => {
    worker = await startWorker({ HERALD_HANDSHAKE_TIMEOUT_MS: '1000', HERALD_MAX_FRAGMENTS: '1024', HERALD_RATE_FRAMES_PER_S: '0', HERALD_RATE_BYTES_PER_S: '0' });
    bystander = await TestClient.open(`${worker.wsUrl}/ws`);
  });
  after(async () => {
    await bystander?.close();
    await worker?.stop();
  });

  for (const c of FRAME_CASES) {
    it(`closes on ${c.name}: ${c.expect.join(' or ')}`, async () => {
      const raw = await RawSocket.upgrade(worker.port, '/ws');
      raw.write(c.bytes());
      const code = await raw.closeCode();
      raw.destroy();
      expect(c.expect).to.include(code);
      await served();
    });
  }

  it('answers every frame case the same way on /echo', async () => {
    for (const c of FRAME_CASES) {
      const raw = await RawSocket.upgrade(worker.port, '/echo');
      raw.write(c.bytes());
      expect(c.expect, c.name).to.include(await raw.closeCode());
      raw.destroy();
    }
    await served();
  });

  it('refuses thousands of headers and a huge Sec-WebSocket-Protocol with 431 (or a dropped socket)', async () => {
    const manyHeaders = Array.from({ length: 5000 }, (_, i) => `X-Junk-${i}: ${'v'.repeat(10)}`);
    const hugeProtocol = [`Sec-WebSocket-Protocol: herald.v1, ${Array.from({ length: 20_000 }, (_, i) => `p${i}`).join(', ')}`];
    for (const extra of [manyHeaders, hugeProtocol, [`X-Long: ${'a'.repeat(100_000)}`]]) {
      const raw = await RawSocket.open(worker.port);
      raw.write(upgradeRequest('/ws', extra));
      const head = await raw.waitHead().catch(() => 'dropped');
      expect(head.split('\r\n')[0]).to.be.oneOf(['HTTP/1.1 431 Request Header Fields Too Large', 'dropped']);
      await raw.ended;
    }
    // Many small headers within the size limit are harmless: the upgrade works.
    const ok = await RawSocket.upgrade(worker.port, '/ws', Array.from({ length: 1500 }, (_, i) => `x${i}: y`));
    ok.destroy();
    await served();
  });

  it('drops upgrades that trickle their headers past the handshake timeout', async () => {
    const request = Buffer.from(upgradeRequest('/ws', Array.from({ length: 20 }, (_, i) => `X-Slow-${i}: ${'s'.repeat(20)}`)));
    const sockets = await Promise.all(Array.from({ length: 50 }, () => RawSocket.open(worker.port)));
    const t0 = Date.now();
    let pos = 0;
    const timer = setInterval(() => {
      for (const s of sockets) s.write(request.subarray(pos, pos + 1));
      pos++;
    }, 50);
    try {
      await Promise.all(sockets.map((s) => s.ended));
    } finally {
      clearInterval(timer);
    }
    const elapsed = Date.now() - t0;
    // 1 s timeout, checked every second: all gone long before the ~30 s the request would take.
    expect(elapsed).to.be.below(4000);
    expect(pos).to.be.below(request.length);
    for (const s of sockets) expect(s.head === undefined || !s.head.startsWith('HTTP/1.1 101'), s.head).to.equal(true);
    await served();
  });

  it('answers garbage before the upgrade with 400', async () => {
    for (const junk of ['\x00\x01\x02garbage\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', `GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`, 'G'.repeat(70_000)]) {
      const raw = await RawSocket.open(worker.port);
      raw.write(junk);
      const head = await raw.waitHead().catch(() => 'dropped');
      expect(head.split('\r\n')[0]).to.be.oneOf(['HTTP/1.1 400 Bad Request', 'HTTP/1.1 431 Request Header Fields Too Large', 'HTTP/1.1 505 HTTP Version Not Supported', 'dropped']);
      raw.destroy();
    }
    await served();
  });

  it('stays under 50 MB of RSS growth through waves of every hostile case, and keeps serving', async () => {
    const before = rss(worker.child.pid);
    for (let wave = 0; wave < 5; wave++) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const c = FRAME_CASES[i % FRAME_CASES.length]!;
          const raw = await RawSocket.upgrade(worker.port, i % 2 ? '/ws' : '/echo');
          raw.write(c.bytes());
          await raw.closeCode(10_000).catch(() => undefined);
          raw.destroy();
        }),
      );
      await served();
    }
    const grown = rss(worker.child.pid) - before;
    expect(grown, `RSS grew by ${(grown / 1e6).toFixed(1)} MB`).to.be.below(50 * 1024 * 1024);
    const res = await fetch(`${worker.url}/healthz`);
    expect(res.status).to.equal(200);
  });

  it('does not negotiate permessage-deflate unless configured', async () => {
    const raw = await RawSocket.upgrade(worker.port, '/ws', ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits']);
    expect(raw.head!.toLowerCase()).to.not.include('sec-websocket-extensions');
    raw.destroy();
    const c = await TestClient.open(`${worker.wsUrl}/ws`, { perMessageDeflate: true });
    expect(c.ws.extensions).to.equal('');
    await c.close();
  });
});

describe('hostile input: permessage-deflate on (worker process)', function () {
  this.timeout(60_000);
  let worker: WorkerProcess;
  before(async () => {
    worker = await startWorker({ HERALD_PER_MESSAGE_DEFLATE: 'true', HERALD_RATE_BYTES_PER_S: '0' });
  });
  after(async () => {
    await worker?.stop();
  });

  it('limits a decompression bomb by the message size: 1009, bounded memory, others served', async () => {
    const bystander = await TestClient.open(`${worker.wsUrl}/ws`, { perMessageDeflate: true });
    expect(bystander.ws.extensions).to.include('permessage-deflate');
    const before = rss(worker.child.pid);
    // 64 MB of zeros deflate to about 64 KB on the wire; the limit is 64 KiB inflated.
    const bomb = deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { finishFlush: zlib.Z_SYNC_FLUSH }).subarray(0, -4);
    const codes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const raw = await RawSocket.upgrade(worker.port, '/ws', ['Sec-WebSocket-Extensions: permessage-deflate']);
        expect(raw.head!.toLowerCase()).to.include('permessage-deflate');
        raw.write(buildFrame({ opcode: BINARY, rsv: 4, payload: bomb }));
        const code = await raw.closeCode(10_000);
        raw.destroy();
        return code;
      }),
    );
    expect(new Set(codes)).to.deep.equal(new Set([1009]));
    const grown = rss(worker.child.pid) - before;
    expect(grown, `RSS grew by ${(grown / 1e6).toFixed(1)} MB`).to.be.below(50 * 1024 * 1024);
    // A normal compressed message still works, on a client that was there all along.
    expect(await bystander.request({ type: 'publish', channel: 'room:z', data: 'x'.repeat(10_000) })).to.deep.include({ type: 'ack' });
    // And ws's own client is refused the same way when it sends more than the limit.
    const big = await TestClient.open(`${worker.wsUrl}/ws`, { perMessageDeflate: true });
    big.ws.send('a'.repeat(1024 * 1024));
    expect((await big.closed).code).to.equal(1009);
    await bystander.close();
  });
});
