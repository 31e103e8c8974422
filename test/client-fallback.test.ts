import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import httpProxy from 'http-proxy';
import { WebSocket } from 'ws';
import { Client, State, type ChannelMessage, type ClientOptions, type StateChange, type TransportName } from '@herald/client';
import type { HeraldWorker } from '@herald/server';
import { eventually, startInProcess } from './helpers/index.js';

/**
 * A real HTTP proxy in front of the worker that passes plain requests and, while `blocking`,
 * refuses every WebSocket upgrade (403): what a proxy that does not allow upgrades does. While
 * `down`, it drops every connection at once (an outage: every transport fails).
 */
class UpgradeBlockingProxy {
  blocking = true;
  down = false;
  refused = 0;
  readonly server: Server;
  private readonly proxy = httpProxy.createProxyServer({ ws: true });
  private readonly sockets = new Set<Socket>();

  constructor(target: string) {
    this.proxy.on('error', (_err, _req, res) => {
      if (res && 'writeHead' in res && !res.headersSent) res.writeHead(502).end();
      else (res as Socket | undefined)?.destroy?.();
    });
    this.server = createServer((req, res) => this.proxy.web(req, res, { target }));
    this.server.on('connection', (s) => {
      if (this.down) return s.destroy();
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (this.blocking) {
        this.refused++;
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.proxy.ws(req, socket, head, { target });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/ws`;
  }

  /** Drops every open connection (tunnels and HTTP requests alike). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.proxy.close();
  }
}

describe('client: HTTP fallback transports (in-process worker)', function () {
  this.timeout(30_000);
  let worker: HeraldWorker;
  let url: string;
  const clients: Client[] = [];
  const proxies: UpgradeBlockingProxy[] = [];
  const client = (target: string, options: ClientOptions = {}) => {
    const c = new Client(target, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 200, ...options });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    const started = await startInProcess({ nodeId: 'w1' });
    worker = started.worker;
    url = `${started.ws}/ws`;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await worker.close();
  });

  for (const transport of ['sse', 'long-polling'] as TransportName[]) {
    it(`runs the whole API over ${transport}: subscribe, publish (JSON and binary), presence, direct`, async () => {
      const states: StateChange[] = [];
      const alice = client(url, { transports: [transport], params: { user: 'alice' } });
      alice.on('state', (s) => states.push(s));
      const bob = client(url, { params: { user: 'bob' } }); // on WebSocket
      alice.connect();
      bob.connect();
      expect((await alice.ready()).user).to.equal('alice');
      await bob.ready();
      expect(alice.transport).to.equal(transport);
      expect(states.map((s) => [s.newState, s.transport])).to.deep.equal([[State.Connecting, transport], [State.Connected, transport]]);
      const got: ChannelMessage[] = [];
      const bobGot: ChannelMessage[] = [];
      const joins: string[] = [];
      const aliceSub = alice.subscribe('room:1', { onMessage: (m) => got.push(m), onJoin: (p) => joins.push(String(p.user)) });
      await eventually(() => expect(aliceSub.state).to.equal('subscribed'));
      bob.subscribe('room:1', { onMessage: (m) => bobGot.push(m) });
      await eventually(async () => expect((await alice.presence('room:1')).map((m: { user: string | null }) => m.user).sort()).to.deep.equal(['alice', 'bob']));
      await eventually(() => expect(joins).to.include('bob'));
      expect(await alice.publish('room:1', { hi: 'bob' })).to.include({ offset: 1 });
      await bob.publish('room:1', 'hi alice');
      await alice.publish('room:1', Uint8Array.from([1, 2, 3]));
      await eventually(() => expect(bobGot.length).to.equal(3));
      await eventually(() => expect(got.length).to.equal(3));
      expect(got.map((m) => (m.binary ? [...(m.data as Uint8Array)] : m.data))).to.deep.equal([{ hi: 'bob' }, 'hi alice', [1, 2, 3]]);
      expect(bobGot[2]!.binary).to.equal(true);
      const direct = new Promise((resolve) => alice.on('direct', resolve));
      await bob.send('alice', 'psst');
      expect(await direct).to.deep.equal({ from: 'bob', data: 'psst' });
      // close() ends the HTTP session at once: no session is left to idle out.
      alice.close();
      await eventually(() => expect(worker.http.size).to.equal(0));
    });
  }

  it('splits a burst of frames into POST /emit requests within the server bound (100 frames each)', async () => {
    // More frames in flight than /ws allows by default (64), fewer than the frame burst (200).
    await worker.close();
    const started = await startInProcess({ nodeId: 'w1', limits: { maxFramesInFlight: 1000 } });
    worker = started.worker;
    const c = client(`${started.ws}/ws`, { transports: ['long-polling'] });
    c.connect();
    await c.ready();
    const acks = await Promise.all(Array.from({ length: 180 }, (_, i) => c.publish('room:burst', i)));
    expect(acks.map((a) => a.offset)).to.deep.equal(Array.from({ length: 180 }, (_, i) => i + 1));
  });

  it('falls back to SSE after `fallbackAfter` refused upgrades, and with no WebSocket at all', async () => {
    const { proxy, target } = await openProxy(true);
    const states: StateChange[] = [];
    const c = client(target, { fallbackAfter: 3, probeInterval: 0 });
    c.on('state', (s) => states.push(s));
    c.connect();
    await c.ready();
    expect(c.transport).to.equal('sse');
    expect(proxy.refused).to.equal(3);
    expect(states.filter((s) => s.newState === State.Connecting).map((s) => s.transport)).to.deep.equal(['websocket', 'websocket', 'websocket', 'sse']);
    // No WebSocket constructor (a browser without it, or Node without `ws`): straight to SSE.
    const noWs = client(url, { WebSocket: undefined });
    expect(noWs.transport).to.equal('sse');
    noWs.connect();
    await noWs.ready();
    expect(() => new Client(url, { WebSocket: undefined, transports: ['websocket'] })).to.throw(TypeError, /no usable transport/);
  });

  /** Publishes `count` messages to `channel` over a direct WebSocket client, one every 10 ms. */
  async function publishSlowly(channel: string, count: number): Promise<void> {
    const publisher = client(url);
    publisher.connect();
    await publisher.ready();
    for (let i = 0; i < count; i++) {
      await publisher.publish(channel, i);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** A proxy in front of the worker (see UpgradeBlockingProxy), closed after the test, and its ws:// URL. */
  async function openProxy(blocking: boolean): Promise<{ proxy: UpgradeBlockingProxy; target: string }> {
    const proxy = new UpgradeBlockingProxy(url.replace('ws:', 'http:').replace('/ws', ''));
    proxies.push(proxy);
    proxy.blocking = blocking;
    return { proxy, target: await proxy.listen() };
  }

  for (const fallback of ['sse', 'long-polling'] as TransportName[]) {
    it(`probes back up from ${fallback} to WebSocket without losing a message of a history channel`, async () => {
      const { proxy, target } = await openProxy(true);
      const c = client(target, { transports: ['websocket', fallback], fallbackAfter: 1, probeInterval: 300 });
      const got: ChannelMessage[] = [];
      const sub = c.subscribe('room:up', { onMessage: (m) => got.push(m) });
      c.connect();
      await c.ready();
      await eventually(() => expect(sub.state).to.equal('subscribed'));
      expect(c.transport).to.equal(fallback);
      const publishing = publishSlowly('room:up', 60);
      await eventually(() => expect(got.length).to.be.above(5));
      proxy.blocking = false;
      await eventually(() => expect(c.transport === 'websocket' && c.state === State.Connected).to.equal(true), { timeout: 10_000 });
      await publishing;
      await eventually(() => expect(got.length).to.equal(60));
      expect(got.map((m) => m.data)).to.deep.equal(Array.from({ length: 60 }, (_, i) => i));
      expect(got.map((m) => m.offset)).to.deep.equal(Array.from({ length: 60 }, (_, i) => i + 1));
    });
  }

  it('in an outage, goes back from a failing fallback to the WebSocket that worked (never down to the last transport)', async () => {
    const { proxy, target } = await openProxy(false);
    // Node 20's fetch (undici 6) can hang on a connection closed before the request is written
    // instead of failing (packages/client/README.md): a short connectTimeout bounds such an attempt.
    const c = client(target, { fallbackAfter: 1, probeInterval: 0, connectTimeout: 1000 });
    const got: ChannelMessage[] = [];
    const sub = c.subscribe('room:outage', { onMessage: (m) => got.push(m) });
    c.connect();
    await c.ready();
    await eventually(() => expect(sub.state).to.equal('subscribed'));
    expect(c.transport).to.equal('websocket');
    const attempts: TransportName[] = [];
    c.on('state', (s) => s.newState === State.Connecting && attempts.push(s.transport));
    proxy.down = true;
    proxy.cut();
    const publishing = publishSlowly('room:outage', 40);
    await eventually(() => expect(attempts.length).to.be.at.least(5), { timeout: 10_000 });
    proxy.down = false;
    await eventually(() => expect(c.state).to.equal(State.Connected));
    await publishing;
    await eventually(() => expect(got.length).to.equal(40));
    expect(got.map((m) => m.offset)).to.deep.equal(Array.from({ length: 40 }, (_, i) => i + 1));
    // fallbackAfter 1: each failed WebSocket attempt tries SSE once, and a failed SSE attempt
    // goes straight back to WebSocket — long-polling, the last transport, is never reached.
    expect(attempts).to.not.include('long-polling');
    expect(attempts.slice(0, 5)).to.deep.equal(['websocket', 'sse', 'websocket', 'sse', 'websocket']);
  });

  it('a probe refused while the fallback works: WebSocket counts as blocked, so an outage of the fallback stays on it', async () => {
    const { proxy, target } = await openProxy(false);
    // A reconnect delay of 200–400 ms leaves the refused probe's answer time to arrive before the outage's first retry.
    const c = client(target, { fallbackAfter: 2, minReconnectDelay: 200, maxReconnectDelay: 400, connectTimeout: 1000, probeInterval: 300 });
    c.connect();
    await c.ready();
    expect(c.transport).to.equal('websocket');
    // The network starts refusing upgrades (a new proxy): down to SSE, whose probe is refused too.
    proxy.blocking = true;
    proxy.cut();
    await eventually(() => expect([c.state, c.transport]).to.deep.equal([State.Connected, 'sse']), { timeout: 5000 });
    const refusedBefore = proxy.refused;
    await eventually(() => expect(proxy.refused).to.equal(refusedBefore + 1), { timeout: 5000 });
    const attempts: TransportName[] = [];
    c.on('state', (st) => st.newState === State.Connecting && attempts.push(st.transport));
    proxy.down = true;
    proxy.cut();
    await eventually(() => expect(attempts.length).to.be.at.least(2), { timeout: 10_000 });
    proxy.down = false;
    // Without the refused probe's lesson the first failed SSE attempt would go back to WebSocket.
    expect(attempts.slice(0, 2)).to.deep.equal(['sse', 'sse']);
    await eventually(() => expect(c.state).to.equal(State.Connected), { timeout: 10_000 });
  });

});
