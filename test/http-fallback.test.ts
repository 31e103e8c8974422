import { expect } from 'chai';
import fc from 'fast-check';
import { decodeBinaryFrame, encodeBinaryFrame, formatEventId, formatSessionId, fromBase64, toBase64, parseEventId, sessionOwner } from '@herald/protocol';
import { Authenticator, MemoryBroker, TokenVerifier, loadConfig, type HeraldWorker, type WorkerOptions } from '@herald/server';
import { TestClient, startInProcess, eventually, hsToken, TEST_SECRET } from './helpers/index.js';
import { HttpTestClient } from './helpers/http-session.js';

describe('worker: HTTP fallback /sse, /poll, /emit (memory broker)', () => {
  let worker: HeraldWorker;
  let base: string;
  let wsBase: string;
  const clients: Array<HttpTestClient | TestClient> = [];
  const start = async (options: WorkerOptions = {}) => {
    ({ worker, http: base, ws: wsBase } = await startInProcess({ nodeId: 'w1', ...options }));
  };
  const open = async (mode: 'poll' | 'sse', query = '', headers: Record<string, string> = {}) => {
    const c = await HttpTestClient.open(base, mode, query, headers);
    clients.push(c);
    return c;
  };
  const openWs = async (query = '') => {
    const c = await TestClient.open(`${wsBase}/ws${query}`);
    clients.push(c);
    return c;
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) {
      if (c instanceof HttpTestClient) c.stop();
      else await c.close();
    }
    await worker.close();
  });

  for (const mode of ['poll', 'sse'] as const) {
    describe(`over ${mode}`, () => {
      beforeEach(() => start());

      it('starts with the welcome frame; the session id names the owner node', async () => {
        const c = await open(mode, '?user=alice');
        const welcome = await c.waitFrame((f) => f.type === 'welcome');
        expect(welcome).to.deep.include({ node: 'w1', user: 'alice', heartbeat: 25000 });
        expect(sessionOwner(c.session)).to.equal('w1');
        expect(worker.http.size).to.equal(1);
      });

      it('answers emitted frames in order and delivers publishes between HTTP and /ws clients', async () => {
        const c = await open(mode, '?user=alice');
        const ws = await openWs('?user=bob');
        await ws.request({ type: 'subscribe', channel: 'room:1' });
        // One POST: subscribe then publish take effect in that order (the publish reaches the subscription).
        expect(await c.emit([{ type: 'subscribe', channel: 'room:1', id: 1 }, { type: 'publish', channel: 'room:1', data: { n: 1 }, id: 2 }])).to.equal(204);
        const acks = await c.waitUntil(() => (c.of('ack').length >= 2 ? c.of('ack') : undefined), 5000, 'acks');
        expect(acks.map((a) => a.id)).to.deep.equal([1, 2]);
        expect(acks[1]).to.include({ offset: 1 });
        await c.waitFrame((f) => f.type === 'message' && f.data.n === 1);
        await ws.waitFrame((f) => f.type === 'message' && f.from === 'alice');
        ws.send({ type: 'publish', channel: 'room:1', data: 'from ws' });
        const m = await c.waitFrame((f) => f.type === 'message' && f.data === 'from ws');
        expect(m).to.include({ channel: 'room:1', from: 'bob', offset: 2 });
        // Presence: the HTTP session is a member like any other.
        const presence = await ws.request({ type: 'presence', channel: 'room:1' });
        expect(presence.members.map((p: { user: string }) => p.user).sort()).to.deep.equal(['alice', 'bob']);
      });

      it('carries binary channel frames in base64 form both ways', async () => {
        const c = await open(mode);
        const ws = await openWs();
        await ws.request({ type: 'subscribe', channel: 'bin' });
        await c.request({ type: 'subscribe', channel: 'bin' });
        const payload = Uint8Array.from([0, 1, 2, 250, 255]);
        expect(await c.emit([{ type: 'binary', data: toBase64(encodeBinaryFrame('bin', payload)) }])).to.equal(204);
        const got = await ws.waitBinary();
        expect(Buffer.from(decodeBinaryFrame(got).ok ? (decodeBinaryFrame(got) as any).frame.payload : [])).to.deep.equal(Buffer.from(payload));
        ws.ws.send(encodeBinaryFrame('bin', Uint8Array.from([9, 8, 7])));
        await c.waitCount(() => c.binary.length, 2);
        const decoded = c.binary.map((b) => decodeBinaryFrame(b)).map((d) => (d.ok ? [d.frame.channel, [...d.frame.payload]] : null));
        expect(decoded).to.deep.include(['bin', [9, 8, 7]]);
        // A truncated binary frame is answered like on /ws: bad_request, the session stays.
        await c.emit([{ type: 'binary', data: toBase64(Uint8Array.from([1, 0])) }]);
        await c.waitFrame((f) => f.type === 'error' && f.code === 'bad_request');
        expect((await c.request({ type: 'ping' })).type).to.equal('pong');
      });

      it('delivers direct messages and presence events', async () => {
        const alice = await open(mode, '?user=alice');
        const bob = await open(mode === 'poll' ? 'sse' : 'poll', '?user=bob');
        await alice.request({ type: 'subscribe', channel: 'room:p' });
        await bob.request({ type: 'subscribe', channel: 'room:p' });
        await alice.waitFrame((f) => f.type === 'join' && f.user === 'bob');
        await bob.request({ type: 'send', user: 'alice', data: 'hi' });
        expect(await alice.waitFrame((f) => f.type === 'direct')).to.deep.include({ from: 'bob', data: 'hi' });
      });

      it('closes a session over its send-buffer bound with 4008 and forgets it', async () => {
        await worker.close();
        await start({ limits: { sendBufferBytes: 4096 } });
        const c = await open(mode);
        await c.request({ type: 'subscribe', channel: 'flood' });
        c.stop(); // the client stops reading
        await eventually(() => expect(worker.http.size).to.equal(1));
        const ws = await openWs();
        for (let i = 0; i < 100; i++) ws.send({ type: 'publish', channel: 'flood', data: 'x'.repeat(100) });
        await ws.request({ type: 'presence', channel: 'flood' });
        // Nobody fetches the close frame: the session is gone after the close grace (5 s default).
        await eventually(() => expect(worker.http.size).to.equal(0), { timeout: 10_000 });
        expect((await worker.metrics.registry.getSingleMetric('herald_server_closes_total')!.get()).values.find((v) => v.labels.code === '4008')?.value).to.equal(1);
      });
    });
  }

  describe('poll specifics', () => {
    it('holds a poll until a frame is queued, or answers it empty after the hold', async () => {
      await start({ http: { pollHoldMs: 20_000 } });
      const c = await open('poll');
      await c.request({ type: 'subscribe', channel: 'room:h' });
      const ws = await openWs();
      const t0 = Date.now();
      ws.send({ type: 'publish', channel: 'room:h', data: 'now' });
      await c.waitFrame((f) => f.type === 'message' && f.data === 'now');
      expect(Date.now() - t0).to.be.below(5000); // answered on the frame, not after the 20 s hold
      // A poll with nothing to send is answered empty after the hold.
      await worker.close();
      await start({ http: { pollHoldMs: 300 } });
      const first = await fetch(`${base}/poll`).then((r) => r.json());
      const t1 = Date.now();
      const again = await fetch(`${base}/poll?session=${first.session}&ack=${first.last}`).then((r) => r.json());
      expect(Date.now() - t1).to.be.within(250, 5000);
      expect(again.frames).to.deep.equal([]);
    });

    it('sends unacknowledged frames again: a lost poll answer loses nothing', async () => {
      await start();
      const first = await fetch(`${base}/poll`).then((r) => r.json());
      const sid = first.session;
      await fetch(`${base}/emit?session=${sid}`, { method: 'POST', body: JSON.stringify([{ type: 'ping', id: 7 }]) });
      const a = await fetch(`${base}/poll?session=${sid}&ack=${first.last}`).then((r) => r.json());
      expect(a.frames).to.deep.equal([{ type: 'pong', id: 7 }]);
      // The answer is "lost": the next poll does not acknowledge it, and gets it again.
      const b = await fetch(`${base}/poll?session=${sid}&ack=${first.last}`).then((r) => r.json());
      expect(b.frames).to.deep.equal([{ type: 'pong', id: 7 }]);
      expect(b.last).to.equal(a.last);
    });

    it('expires an idle session (nothing attached) and withdraws its presence', async () => {
      await start({ http: { idleMs: 1000, pollHoldMs: 200 } });
      const ws = await openWs('?user=watcher');
      await ws.request({ type: 'subscribe', channel: 'room:idle' });
      const c = await open('poll', '?user=ghost');
      await c.request({ type: 'subscribe', channel: 'room:idle' });
      await ws.waitFrame((f) => f.type === 'join' && f.user === 'ghost');
      c.stop();
      await ws.waitFrame((f) => f.type === 'leave' && f.user === 'ghost', 8000);
      expect(worker.http.size).to.equal(0);
      expect((await fetch(`${base}/poll?session=${c.session}`)).status).to.equal(404);
    });
  });

  describe('SSE specifics', () => {
    beforeEach(() => start());

    it('numbers events <session>:<seq> and resumes after Last-Event-ID without gaps or repeats', async () => {
      const c = await open('sse');
      await c.request({ type: 'subscribe', channel: 'room:r' });
      const ws = await openWs();
      ws.send({ type: 'publish', channel: 'room:r', data: 1 });
      await c.waitFrame((f) => f.type === 'message' && f.data === 1);
      const seqs = c.eventIds.map((id) => parseEventId(id)!);
      expect(seqs.every((s) => s.session === c.session)).to.equal(true);
      expect(seqs.map((s) => s.seq)).to.deep.equal(seqs.map((_, i) => i + 1));
      c.dropStream();
      for (let i = 2; i <= 5; i++) ws.send({ type: 'publish', channel: 'room:r', data: i });
      await ws.request({ type: 'presence', channel: 'room:r' });
      c.stream(`${base}/sse`, c.eventIds.at(-1));
      await c.waitCount(() => c.of('message').length, 5);
      expect(c.of('message').map((m) => m.data)).to.deep.equal([1, 2, 3, 4, 5]);
    });

    it('sends the 1001 close frame on drain, then ends the stream', async () => {
      const c = await open('sse');
      await c.waitFrame((f) => f.type === 'welcome');
      await worker.drain();
      await c.waitUntil(() => c.closeFrame, 5000, 'close frame');
      expect(c.closeFrame).to.deep.equal({ code: 1001, reason: 'going away' });
      expect(worker.http.size).to.equal(0);
    });
  });

  describe('drain of a balancer', () => {
    it('closes with 1001 the sessions opened through that balancer, and no other', async () => {
      const broker = new MemoryBroker();
      await start({ broker });
      const via = await open('sse', '', { 'x-herald-balancer': 'bal-1' });
      const other = await open('poll', '', { 'x-herald-balancer': 'bal-2' });
      const direct = await open('poll');
      await via.waitFrame((f) => f.type === 'welcome');
      await broker.command({ kind: 'drain-balancer', balancer: 'bal-1', spreadMs: 0 });
      await via.waitUntil(() => via.closeFrame, 5000, 'close frame');
      expect(via.closeFrame).to.deep.equal({ code: 1001, reason: 'balancer going away' });
      await eventually(() => expect(worker.http.size).to.equal(2));
      expect(other.closeFrame).to.equal(undefined);
      expect(direct.closeFrame).to.equal(undefined);
    });
  });

  describe('limits, auth and origins', () => {
    it('refuses a disallowed origin with 403 and answers CORS for an allowed one', async () => {
      await start({ allowedOrigins: ['https://ok.example'] });
      expect((await fetch(`${base}/poll`, { headers: { origin: 'https://evil.example' } })).status).to.equal(403);
      const ok = await fetch(`${base}/poll`, { headers: { origin: 'https://ok.example' } });
      expect(ok.status).to.equal(200);
      expect(ok.headers.get('access-control-allow-origin')).to.equal('https://ok.example');
    });

    it('takes a token from the header, refuses a bad one with 401, and accepts an auth frame in mode required', async () => {
      await start({ authenticator: new Authenticator({ mode: 'required', verifier: new TokenVerifier({ secret: TEST_SECRET }), authTimeoutMs: 5000 }) });
      const token = await hsToken('alice');
      const viaHeader = await open('poll', '', { authorization: `Bearer ${token}` });
      expect((await viaHeader.waitFrame((f) => f.type === 'welcome')).user).to.equal('alice');
      expect((await fetch(`${base}/poll`, { headers: { authorization: 'Bearer nope' } })).status).to.equal(401);
      // No token yet: the first poll answers at once (no welcome), the auth frame brings it.
      const late = await open('poll');
      expect(late.frames).to.deep.equal([]);
      expect((await late.request({ type: 'subscribe', channel: 'room:1' })).code).to.equal('unauthorized');
      await late.emit([{ type: 'auth', token: await hsToken('bob'), id: 99 }]);
      expect((await late.waitFrame((f) => f.type === 'welcome')).user).to.equal('bob');
      // An SSE with a bad ?token= gets the 4001 close frame (an EventSource cannot read a status).
      const sse = new (HttpTestClient as any)(base, 'sse', {}) as HttpTestClient;
      sse.stream(`${base}/sse?token=bad`);
      await sse.waitUntil(() => sse.closeFrame, 5000, 'close frame');
      expect(sse.closeFrame!.code).to.equal(4001);
    });

    it('closes with 1009 on a frame over the message size, and refuses bodies that are not arrays', async () => {
      await start({ maxMessageBytes: 1024 });
      const c = await open('poll');
      expect(await c.emit({ type: 'ping' } as unknown as unknown[])).to.equal(400);
      expect(await c.emit([{ type: 'publish', channel: 'a', data: 'x'.repeat(2000) }])).to.equal(413);
      await c.waitUntil(() => c.closeFrame, 5000, 'close frame');
      expect(c.closeFrame!.code).to.equal(1009);
      expect((await fetch(`${base}/emit?session=nobody~AAAAAAAAAAAA`, { method: 'POST', body: '[]' })).status).to.equal(404);
      expect((await fetch(`${base}/emit`, { method: 'GET' })).status).to.equal(405);
    });

    it('applies the frame rate limit of /ws: refused frames are answered rate_limited with their id', async () => {
      await start({ limits: { rate: { framesPerSec: 1, framesBurst: 5, bytesPerSec: 1e6, bytesBurst: 1e6, errorsPerSec: 100, errorsBurst: 100, maxRefused: 1000 } } });
      const c = await open('poll');
      const frames = Array.from({ length: 10 }, (_, i) => ({ type: 'ping', id: i + 1 }));
      expect(await c.emit(frames)).to.equal(204);
      await c.waitCount(() => c.frames.filter((f) => f.id !== undefined).length, 10);
      const limited = c.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited').map((f) => f.id);
      expect(limited.length).to.be.at.least(4);
      expect(c.frames.filter((f) => f.id !== undefined).map((f) => f.id)).to.deep.equal(frames.map((f) => f.id));
    });
  });
});

describe('protocol: HTTP fallback helpers', () => {
  it('base64 matches RFC 4648 (Node Buffer) both ways, and refuses what is not base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toBase64(bytes);
        expect(text).to.equal(Buffer.from(bytes).toString('base64'));
        expect(Buffer.from(fromBase64(text)!)).to.deep.equal(Buffer.from(bytes));
      }),
    );
    expect(fromBase64('a$bc')).to.equal(undefined);
    expect(fromBase64('abcde')).to.equal(undefined);
  });

  it('session ids name their owner; event ids carry the session and sequence; malformed ones are refused', () => {
    const id = formatSessionId('worker-1.a_b', 'AAAAAAAAAAAAAAAA');
    expect(sessionOwner(id)).to.equal('worker-1.a_b');
    expect(parseEventId(formatEventId(id, 42))).to.deep.equal({ session: id, seq: 42 });
    for (const bad of ['', 'nonode', '~AAAAAAAAAAAA', 'w1~short', 'w 1~AAAAAAAAAAAA', 42, null]) expect(sessionOwner(bad)).to.equal(undefined);
    for (const bad of [`${id}:`, `${id}:-1`, `${id}:1.5`, 'x:1', undefined]) expect(parseEventId(bad)).to.equal(undefined);
  });
});

describe('config: HTTP fallback variables', () => {
  it('reads them with their defaults, and refuses invalid values naming the variable', () => {
    expect(loadConfig({}).http).to.deep.equal({ pollHoldMs: 25_000, idleMs: 30_000, maxEmitFrames: 100, forwardTimeoutMs: 5000, replayBytes: 65_536 });
    expect(loadConfig({ HERALD_POLL_HOLD_MS: '2000', HERALD_HTTP_SESSION_IDLE_MS: '5000', HERALD_SSE_REPLAY_BYTES: '0' }).http).to.include({ pollHoldMs: 2000, idleMs: 5000, replayBytes: 0 });
    for (const [name, value] of [['HERALD_POLL_HOLD_MS', 'soon'], ['HERALD_HTTP_SESSION_IDLE_MS', '10'], ['HERALD_HTTP_MAX_EMIT_FRAMES', '0']]) {
      expect(() => loadConfig({ [name!]: value }), name).to.throw(new RegExp(name!));
    }
  });
});
