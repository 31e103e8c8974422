import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import {
  Client,
  ConnectionClosedError,
  ServerError,
  State,
  SubscriptionState,
  type ChannelMessage,
  type ClientOptions,
  type DirectMessage,
  type HeraldError,
  type PresenceEvent,
  type SubscribedEvent,
} from '@herald/client';
import { eventually, startWorker, type WorkerProcess } from './helpers/index.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { nextState } from './helpers/client-state.js';

describe('client against worker processes (memory broker)', function () {
  this.timeout(30_000);
  const workers: WorkerProcess[] = [];
  const clients: Client[] = [];
  const proxies: TcpProxy[] = [];

  const worker = async (env: NodeJS.ProcessEnv = {}) => {
    const w = await startWorker({ HERALD_DRAIN_MS: '1000', ...env });
    workers.push(w);
    return w;
  };
  const client = (url: string, options: ClientOptions = {}) => {
    const c = new Client(url, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 200, ...options });
    c.on('error', () => {}); // asserted where it matters
    clients.push(c);
    return c;
  };
  const connected = async (url: string, options: ClientOptions = {}) => {
    const c = client(url, options);
    c.connect();
    await c.ready();
    return c;
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  });

  it('covers every API call: connect, welcome, subscribe, publish (JSON and binary), send, presence, unsubscribe, close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herald-client-'));
    const config = join(dir, 'herald.json');
    await writeFile(config, JSON.stringify({ namespaces: { ro: { clientPublish: false }, vip: { requireAuth: true } } }));
    const w = await worker({ HERALD_CONFIG: config });
    await rm(dir, { recursive: true });
    const alice = await connected(`${w.wsUrl}/ws`, { params: { user: 'alice' } });
    const bob = client(`${w.wsUrl}/ws`, { params: { user: 'bob' } });
    const welcomes: unknown[] = [];
    bob.on('welcome', (f) => welcomes.push(f));
    bob.connect();
    const welcome = await bob.ready();
    expect(welcome).to.include({ type: 'welcome', node: w.node, user: 'bob' });
    expect(welcomes).to.deep.equal([welcome]);
    expect(bob.welcome?.conn).to.equal(welcome.conn);

    const aliceGot: ChannelMessage[] = [];
    const bobGot: ChannelMessage[] = [];
    const joins: PresenceEvent[] = [];
    const leaves: PresenceEvent[] = [];
    const subA = alice.subscribe('room:api', { onMessage: (m) => aliceGot.push(m), onJoin: (e) => joins.push(e), onLeave: (e) => leaves.push(e) });
    const first = await subA.ready();
    expect(first).to.include({ channel: 'room:api', recovering: false, offset: 0 });
    expect(subA.state).to.equal(SubscriptionState.Subscribed);
    const subB = bob.subscribe('room:api', { onMessage: (m) => bobGot.push(m) });
    await subB.ready();
    await eventually(() => expect(joins.map((j) => j.user)).to.include('bob'));

    const members = await alice.presence('room:api');
    expect(members.map((m) => m.user).sort()).to.deep.equal(['alice', 'bob']);
    expect(await subB.presence()).to.have.length(2);

    const ack = await alice.publish('room:api', { text: 'hello' });
    expect(ack.offset).to.equal(1);
    expect(ack.epoch).to.be.a('string');
    await eventually(() => expect(bobGot).to.have.length(1));
    expect(bobGot[0]).to.deep.equal({ channel: 'room:api', data: { text: 'hello' }, binary: false, offset: 1, epoch: ack.epoch, from: 'alice' });
    await eventually(() => expect(aliceGot).to.have.length(1)); // the publisher's own subscription too

    const bytes = new Uint8Array(300).map((_, i) => i % 256);
    expect(await subB.publish(bytes.buffer)).to.deep.equal({});
    await eventually(() => expect(aliceGot).to.have.length(2));
    expect(aliceGot[1]!.binary).to.equal(true);
    expect([...(aliceGot[1]!.data as Uint8Array)]).to.deep.equal([...bytes]);

    const directs: DirectMessage[] = [];
    bob.on('direct', (d) => directs.push(d));
    await alice.send('bob', { secret: 42 });
    await eventually(() => expect(directs).to.deep.equal([{ from: 'alice', data: { secret: 42 } }]));

    const refused = await alice.publish('ro:news', 'x').catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(ServerError);
    expect((refused as ServerError).code).to.equal('forbidden');
    const vipErrors: HeraldError[] = [];
    const vip = alice.subscribe('vip:lounge', { onError: (e) => vipErrors.push(e) });
    expect(await vip.ready().catch((e: HeraldError) => e.code)).to.equal('unsubscribed');
    expect(vipErrors[0]).to.be.instanceOf(ServerError);
    expect(vipErrors[0]!.code).to.equal('forbidden');
    expect(alice.getSubscription('vip:lounge')).to.equal(undefined);

    subB.unsubscribe();
    expect(subB.state).to.equal(SubscriptionState.Unsubscribed);
    await eventually(() => expect(leaves.map((l) => l.user)).to.include('bob'));
    await alice.publish('room:api', 'after');
    await eventually(() => expect(aliceGot).to.have.length(3));
    expect(bobGot).to.have.length(2); // its own binary publish, nothing after unsubscribe

    bob.close();
    expect(bob.state).to.equal(State.Disconnected);
    await eventually(async () => expect((await alice.presence('room:api')).map((m) => m.user)).to.deep.equal(['alice']));
  });

  it('reconnects after the worker drains with 1001 (SIGTERM) and resubscribes', async () => {
    const w1 = await worker();
    const c = await connected(`${w1.wsUrl}/ws`, { params: { user: 'carol' } });
    const subscribed: SubscribedEvent[] = [];
    const got: ChannelMessage[] = [];
    c.subscribe('room:drain', { onSubscribed: (e) => subscribed.push(e), onMessage: (m) => got.push(m) });
    await eventually(() => expect(subscribed).to.have.length(1));
    const lost = nextState(c, State.Reconnecting);
    const exited = w1.stop('SIGTERM');
    const change = await lost;
    expect(change).to.include({ oldState: 'connected', code: 1001 });
    expect((await exited).code).to.equal(0);

    const w2 = await worker({ PORT: String(w1.port) });
    const welcome = new Promise((resolve) => c.once('welcome', resolve));
    await nextState(c, State.Connected);
    expect(await welcome).to.include({ node: w2.node });
    // A restarted single worker has a new history epoch: the client says what it could not recover.
    await eventually(() => expect(subscribed).to.have.length(2));
    expect(subscribed[1]).to.include({ recovering: true, recovered: false });
    const p = await connected(`${w2.wsUrl}/ws`);
    await p.publish('room:drain', 'on w2');
    await eventually(() => expect(got.map((m) => m.data)).to.deep.equal(['on w2']));
  });

  it('reconnects after the worker is SIGKILLed (1006)', async () => {
    const w1 = await worker();
    const c = await connected(`${w1.wsUrl}/ws`);
    const lost = nextState(c, State.Reconnecting);
    await w1.stop('SIGKILL');
    expect((await lost).code).to.equal(1006);
    // While the port is closed, attempts fail and the delay grows within its bounds.
    const retry = await nextState(c, State.Reconnecting);
    expect(retry.attempt).to.be.at.least(1);
    expect(retry.delay).to.be.within(20, 200);
    const w2 = await worker({ PORT: String(w1.port) });
    await nextState(c, State.Connected);
    expect(c.welcome?.node).to.equal(w2.node);
  });

  it('recovers every message published while the link was down: none lost, none duplicated', async () => {
    const w = await worker();
    const proxy = await TcpProxy.start(w.port);
    proxies.push(proxy);
    const sub = client(`ws://127.0.0.1:${proxy.port}/ws`);
    const got: ChannelMessage[] = [];
    const subscribed: SubscribedEvent[] = [];
    const recSub = sub.subscribe('room:rec', { onMessage: (m) => got.push(m), onSubscribed: (e) => subscribed.push(e) });
    sub.connect();
    await recSub.ready();
    const pub = await connected(`${w.wsUrl}/ws`);

    const total = 60;
    let published = 0;
    const publishing = (async () => {
      while (published < total) {
        await pub.publish('room:rec', { n: ++published });
        if (published === 20) {
          await eventually(() => expect(got.length).to.be.at.least(15));
          await proxy.down(); // the subscriber's link dies mid-stream; it keeps retrying
        }
        if (published === 40) await proxy.up(); // back while publishing goes on
      }
    })();
    await publishing;
    await eventually(() => expect(got).to.have.length(total), { timeout: 10_000 }).catch((e) => {
      console.log(JSON.stringify(got.map((m) => m.offset)), JSON.stringify(subscribed));
      throw e;
    });
    expect(got.map((m) => (m.data as { n: number }).n)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
    expect(got.map((m) => m.offset)).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
    // Replayed messages precede the subscribe ack, so the `subscribed` event can come just after.
    await eventually(() => expect(subscribed.at(-1)).to.include({ recovering: true, recovered: true }));
    expect(subscribed.length).to.be.at.least(2);
    // Nothing more arrives after the last one (no late duplicates).
    await pub.publish('room:rec', { n: 'end' });
    await eventually(() => expect(got).to.have.length(total + 1));
  });

  it('detects a frozen (half-open) link with the ping watchdog and reconnects', async () => {
    const w = await worker();
    const proxy = await TcpProxy.start(w.port);
    proxies.push(proxy);
    const c = await connected(`ws://127.0.0.1:${proxy.port}/ws`, { pingInterval: 100, pongTimeout: 300 });
    const lost = nextState(c, State.Reconnecting, 5000);
    proxy.freeze();
    expect(await lost).to.include({ code: 4000, reason: 'ping timeout' });
    await nextState(c, State.Connected);
    expect(proxy.accepted).to.equal(2);
  });

  it('queues publishes while the worker is down and sends them after the reconnect', async () => {
    const w1 = await worker();
    const c = await connected(`${w1.wsUrl}/ws`, { requestTimeout: 20_000 });
    const lost = nextState(c, State.Reconnecting);
    await w1.stop('SIGKILL');
    await lost;
    const pending = [c.publish('room:q', 'a'), c.publish('room:q', 'b'), c.send('nobody', 'x')];
    expect(c.queued).to.equal(3);
    const w2 = await worker({ PORT: String(w1.port) });
    const acks = await Promise.all(pending);
    expect(acks[0]).to.include({ offset: 1 });
    expect(acks[1]).to.include({ offset: 2 });
    expect(c.queued).to.equal(0);
    // Both landed on the new worker: a fresh subscription starts at offset 2 of the same epoch.
    const reader = await connected(`${w2.wsUrl}/ws`);
    const first = await reader.subscribe('room:q').ready();
    expect(first).to.include({ offset: 2, epoch: acks[1]!.epoch });
  });

  it('fails in-flight requests with ConnectionClosedError when the link dies (no silent resend)', async () => {
    const w = await worker();
    const proxy = await TcpProxy.start(w.port);
    proxies.push(proxy);
    const c = await connected(`ws://127.0.0.1:${proxy.port}/ws`, { requestTimeout: 20_000 });
    proxy.freeze(); // the publish below never reaches the worker
    const p = c.publish('room:x', 1).catch((e: unknown) => e);
    await proxy.close(); // now the link dies
    const err = await p;
    expect(err).to.be.instanceOf(ConnectionClosedError);
    expect((err as ConnectionClosedError).closeCode).to.equal(1006);
  });
});
