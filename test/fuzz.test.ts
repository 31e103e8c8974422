import { expect } from 'chai';
import fc from 'fast-check';
import { CloseCode, ErrorCode, decodeBinaryFrame, decodeClientFrame, encodeBinaryFrame, isValidChannel, ServerType } from '@herald/protocol';
import { Authenticator, TokenVerifier, type HeraldWorker } from '@herald/server';
import { RawSocket, buildFrame, closePayload, startInProcess, startWorker, TestClient, hsToken, TEST_SECRET, type WorkerProcess } from './helpers/index.js';

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
const CLOSE_CODES = new Set<number>(Object.values(CloseCode));
const TYPES = ['auth', 'subscribe', 'unsubscribe', 'publish', 'presence', 'send', 'ping'];

// Runs are reproducible: a failure prints its seed; HERALD_FUZZ_SEED replays it.
const seed = process.env.HERALD_FUZZ_SEED ? Number(process.env.HERALD_FUZZ_SEED) : undefined;
const runs = (n: number) => ({ numRuns: Number(process.env.HERALD_FUZZ_RUNS ?? n), seed });

const channelArb = fc.oneof(
  fc.constantFrom('room:1', 'news:x', 'a', 'ns:deep/path=1,2@x', 'x'.repeat(200), 'x'.repeat(201), '', 'bad name', 'ü:1'),
  fc.string({ maxLength: 40 }),
  fc.anything(),
);
const idArb = fc.oneof(fc.integer({ min: 1, max: 1e6 }), fc.constantFrom(0, -1, 1.5, 2 ** 53, '1', null, true), fc.anything());

/** Client frames: valid ones, with fields mutated or dropped, with random extra fields. */
const frameObjectArb = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...TYPES), fc.constantFrom(...TYPES), fc.string({ maxLength: 12 }), fc.anything()),
    id: idArb,
    channel: channelArb,
    data: fc.jsonValue({ maxDepth: 3 }),
    since: fc.oneof(fc.record({ offset: fc.integer({ min: -2, max: 100 }), epoch: fc.string({ maxLength: 70 }) }), fc.anything()),
    user: fc.oneof(fc.constantFrom('alice', 'bob', ''), fc.string({ maxLength: 210 }), fc.anything()),
    token: fc.oneof(fc.string({ maxLength: 60 }), fc.anything()),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);

/** Text frame payloads: JSON of mutated frames, truncated JSON, random strings. */
const textArb = fc.oneof(
  { weight: 6, arbitrary: frameObjectArb.map((o) => JSON.stringify(o) ?? 'null') },
  { weight: 2, arbitrary: fc.tuple(frameObjectArb, fc.nat()).map(([o, n]) => (JSON.stringify(o) ?? '').slice(0, n % 80)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
);

/** Binary frame payloads: valid channel frames, mutated ones, random bytes. */
const binaryArb = fc.oneof(
  fc.tuple(fc.constantFrom('room:1', 'news:x', 'b'), fc.uint8Array({ maxLength: 100 })).map(([c, p]) => Buffer.from(encodeBinaryFrame(c, p))),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, i, v]) => {
    const buf = Buffer.from(encodeBinaryFrame('room:1', b));
    buf[i % buf.length] = v;
    return buf;
  }),
  fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
);

describe('fuzz: protocol decoders (fast-check)', () => {
  it('decodeClientFrame never throws and refuses only with bad_request', () => {
    fc.assert(
      fc.property(textArb, (text) => {
        const d = decodeClientFrame(text);
        if (!d.ok) {
          expect(d.error.code).to.equal('bad_request');
          expect(d.error.message).to.be.a('string').and.have.length.below(300);
          if (d.error.id !== undefined) expect(Number.isSafeInteger(d.error.id) && d.error.id > 0).to.equal(true);
          return;
        }
        const fr = d.frame as unknown as Record<string, unknown>;
        expect(TYPES).to.include(fr.type);
        if (fr.id !== undefined) expect(Number.isSafeInteger(fr.id) && (fr.id as number) > 0).to.equal(true);
        if ('channel' in fr) expect(isValidChannel(fr.channel as string)).to.equal(true);
      }),
      runs(5000),
    );
  });

  it('decodeBinaryFrame never throws and refuses only with bad_request', () => {
    fc.assert(
      fc.property(binaryArb, (buf) => {
        const d = decodeBinaryFrame(buf);
        if (d.ok) expect(isValidChannel(d.frame.channel)).to.equal(true);
        else expect(d.error.code).to.equal('bad_request');
      }),
      runs(5000),
    );
  });
});

describe('fuzz: /ws message handlers (in-process worker, fast-check)', function () {
  this.timeout(120_000);
  let worker: HeraldWorker;
  let base: string;
  let client: TestClient | undefined;
  const opened: TestClient[] = [];

  before(async () => {
    ({ worker, ws: base } = await startInProcess({
      authenticator: new Authenticator({ mode: 'optional', verifier: new TokenVerifier({ secret: TEST_SECRET }) }),
      namespaces: { news: { clientPublish: false }, private: { requireAuth: true } },
      limits: { rate: { framesPerSec: 10_000, framesBurst: 10_000, bytesPerSec: 0, bytesBurst: 1, errorsPerSec: 10_000, errorsBurst: 10_000, maxRefused: 0 } },
    }));
  });
  after(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await worker.close();
  });

  it('answers thousands of random and mutated frames only with documented error codes and close codes', async () => {
    const token = await hsToken('fuzzer', { channels: ['room:*', 'news:*', 'a', 'b'] });
    let pingId = 1_000_000;
    let frames = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof({ weight: 4, arbitrary: textArb.map((t) => ({ t })) }, { weight: 1, arbitrary: binaryArb.map((b) => ({ b })) }), { minLength: 1, maxLength: 12 }), fc.boolean(), async (batch, withToken) => {
        if (!client || client.ws.readyState !== client.ws.OPEN) {
          client = await TestClient.open(`${base}/ws${withToken ? `?token=${token}` : ''}`);
          opened.push(client);
        }
        const c = client;
        const seen = c.frames.length;
        for (const fr of batch) {
          if ('t' in fr) c.ws.send(fr.t);
          else c.ws.send(fr.b);
        }
        frames += batch.length;
        const id = ++pingId;
        c.send({ type: 'ping', id });
        const outcome = await Promise.race([c.waitFrame((f) => f.type === 'pong' && f.id === id, 5000).then(() => 'pong'), c.closed.then((x) => x.code)]);
        for (const f of c.frames.slice(seen)) {
          if (f.type === 'error') expect(ERROR_CODES, JSON.stringify(f)).to.include(f.code);
          // Only frame types of the protocol's catalog (ServerType, which gained `lost` in issue 12).
          expect(Object.values(ServerType)).to.include(f.type);
        }
        if (typeof outcome === 'number') expect(CLOSE_CODES, `close ${outcome}`).to.include(outcome);
        // Nothing unexpected: handlers never answered `internal`.
        expect(c.frames.slice(seen).filter((f) => f.type === 'error' && f.code === 'internal')).to.deep.equal([]);
      }),
      runs(600),
    );
    expect(frames).to.be.above(runs(600).numRuns * 2);
    const probe = await TestClient.open(`${base}/ws`);
    opened.push(probe);
    expect(await probe.request({ type: 'subscribe', channel: 'room:after' })).to.deep.include({ type: 'ack' });
  });
});

describe('fuzz: raw WebSocket frames (worker process, fast-check)', function () {
  this.timeout(120_000);
  let worker: WorkerProcess;
  let bystander: TestClient;
  before(async () => {
    worker = await startWorker({ HERALD_MAX_MESSAGE_BYTES: '4096', HERALD_MAX_FRAGMENTS: '16' });
    bystander = await TestClient.open(`${worker.wsUrl}/ws`);
  });
  after(async () => {
    await bystander?.close();
    await worker?.stop();
  });

  const rawFrameArb = fc.record({
    fin: fc.boolean(),
    rsv: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
    opcode: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 1, 2, 8, 9, 10) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) }),
    mask: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    payload: fc.oneof(
      textArb.map((t) => Buffer.from(t)),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.integer({ min: 0, max: 5100 }), fc.string({ maxLength: 20 })).map(([code, reason]) => closePayload(code, reason)),
      fc.integer({ min: 0, max: 6000 }).map((n) => Buffer.alloc(n, 0x61)),
    ),
  });
  /** A frame's bytes with some of them overwritten. */
  const mutatedArb = fc.tuple(rawFrameArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })).map(([fr, flips]) => {
    const bytes = buildFrame(fr);
    for (const [i, v] of flips) bytes[i % bytes.length] = v;
    return { fr, bytes };
  });

  it('closes with 1002/1007/1008/1009 (or echoes a client close, or stays open) and keeps serving others', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutatedArb, { minLength: 1, maxLength: 6 }), async (frames) => {
        const raw = await RawSocket.upgrade(worker.port, Math.random() < 0.8 ? '/ws' : '/echo');
        for (const { bytes } of frames) raw.write(bytes);
        // A valid close frame from the client is echoed back with the client's code (1005: none).
        const sentClose = frames.some(({ bytes }) => (bytes[0]! & 0x0f) === 8);
        const outcome = await Promise.race([raw.closeCode(5000), new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 300).unref())]);
        raw.destroy();
        n++;
        if (outcome === 'open' || outcome === 'dropped') return;
        const echo = sentClose && (outcome === 1005 || (outcome >= 1000 && outcome <= 1014) || (outcome >= 3000 && outcome <= 4999));
        if (!echo) expect([1002, 1007, 1008, 1009], `close ${outcome}`).to.include(outcome);
      }),
      runs(300),
    );
    expect(n).to.be.at.least(runs(300).numRuns);
    const id = 4242;
    bystander.send({ type: 'ping', id });
    await bystander.waitFrame((f) => f.type === 'pong' && f.id === id);
    expect((await fetch(`${worker.url}/healthz`)).status).to.equal(200);
    expect(worker.child.proc.exitCode).to.equal(null);
  });
});
