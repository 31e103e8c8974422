import { expect } from 'chai';
import { WebSocket } from 'ws';
import {
  Client,
  ClientClosedError,
  ConnectionClosedError,
  QueueFullError,
  ServerError,
  State,
  SubscriptionState,
  TimeoutError,
  UnauthorizedError,
  type ClientOptions,
  type ChannelMessage,
  type HeraldError,
  type SubscribedEvent,
} from '@herald/client';
import { ScriptedWsServer, type ScriptedConnection } from './helpers/scripted-ws-server.js';
import { nextState } from './helpers/client-state.js';
import { eventually } from './helpers/wait.js';


const frameOf = (conn: ScriptedConnection, type: string) => conn.frames.find((f) => f.type === type);

describe('client state machine (unit, scripted ws server)', () => {
  let server: ScriptedWsServer;
  const clients: Client[] = [];
  const make = (options: ClientOptions = {}, url = server.url): Client => {
    const client = new Client(url, { WebSocket, minReconnectDelay: 10, maxReconnectDelay: 40, ...options });
    clients.push(client);
    return client;
  };

  beforeEach(async () => {
    server = await ScriptedWsServer.start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server.close();
  });

  it('goes disconnected -> connecting -> connected and emits welcome', async () => {
    const client = make();
    const changes: string[] = [];
    client.on('state', (c) => changes.push(`${c.oldState}->${c.newState}`));
    const welcome = new Promise((resolve) => client.on('welcome', resolve));
    expect(client.state).to.equal(State.Disconnected);
    client.connect();
    const w = await client.ready();
    expect(w.node).to.equal('scripted');
    expect(await welcome).to.deep.equal(w);
    expect(client.welcome?.conn).to.equal('c1');
    expect(changes).to.deep.equal(['disconnected->connecting', 'connecting->connected']);
    client.close();
    expect(client.state).to.equal(State.Disconnected);
    expect(changes.at(-1)).to.equal('connected->disconnected');
  });

  it('rejects requests with ClientClosedError while disconnected, and ready() too', async () => {
    const client = make();
    const err = await client.publish('a', 1).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ClientClosedError);
    expect((err as HeraldError).code).to.equal('client_closed');
    expect(await client.ready().catch((e: unknown) => e)).to.be.instanceOf(ClientClosedError);
  });

  it('reconnects after 1001 with a backoff delay in bounds, and resubscribes with since', async () => {
    const client = make({ random: () => 0.999 });
    const got: ChannelMessage[] = [];
    const subscribed: SubscribedEvent[] = [];
    const sub = client.subscribe('room:1', { onMessage: (m) => got.push(m), onSubscribed: (e) => subscribed.push(e) });
    expect(sub.state).to.equal(SubscriptionState.Subscribing);
    client.connect();
    await sub.ready();
    const c1 = await server.connection(1);
    expect(frameOf(c1, 'subscribe')).to.include({ channel: 'room:1' });
    expect(frameOf(c1, 'subscribe')).to.not.have.property('since');
    c1.send({ type: 'message', channel: 'room:1', data: 'a', offset: 1, epoch: 'e1' });
    c1.send({ type: 'message', channel: 'room:1', data: 'b', offset: 2, epoch: 'e1' });
    await eventually(() => expect(got.map((m) => m.data)).to.deep.equal(['a', 'b']));

    // The recovering subscribe gets the missed message 3 plus an overlapping replay of 2.
    server.onFrame = (conn, frame) => {
      if (frame.type === 'subscribe') {
        conn.send({ type: 'message', channel: 'room:1', data: 'b', offset: 2, epoch: 'e1' });
        conn.send({ type: 'message', channel: 'room:1', data: 'c', offset: 3, epoch: 'e1' });
        conn.send({ type: 'ack', id: frame.id as number, offset: 3, epoch: 'e1', recovered: true });
      }
    };
    const reconnecting = nextState(client, State.Reconnecting);
    const subStates: string[] = [];
    sub.on('state', (s) => subStates.push(s.newState));
    c1.socket.close(1001, 'draining');
    const change = await reconnecting;
    expect(change).to.include({ oldState: 'connected', code: 1001, reason: 'draining', attempt: 0 });
    expect(change.delay).to.be.within(10, 20);
    await nextState(client, State.Connected);
    const c2 = await server.connection(2);
    await eventually(() => expect(subscribed).to.have.length(2));
    expect(frameOf(c2, 'subscribe')).to.deep.include({ channel: 'room:1', since: { offset: 2, epoch: 'e1' } });
    expect(subscribed[1]).to.deep.include({ recovering: true, recovered: true, offset: 3 });
    expect(got.map((m) => m.data)).to.deep.equal(['a', 'b', 'c']); // no loss, no duplicate
    expect(subStates).to.deep.equal(['subscribing', 'subscribed']);
    expect(sub.position).to.deep.equal({ offset: 3, epoch: 'e1' });
  });

  it('surfaces recovered:false when the server could not recover', async () => {
    const client = make();
    const sub = client.subscribe('room:1');
    client.connect();
    await sub.ready();
    (await server.connection(1)).send({ type: 'message', channel: 'room:1', data: 'a', offset: 7, epoch: 'e1' });
    await eventually(() => expect(sub.position?.offset).to.equal(7));
    server.onFrame = (conn, frame) => {
      if (frame.type === 'subscribe') conn.send({ type: 'ack', id: frame.id as number, offset: 0, epoch: 'e2', recovered: false });
    };
    const next = new Promise<SubscribedEvent>((resolve) => sub.on('subscribed', resolve));
    server.connections[0]!.socket.terminate(); // abnormal closure, 1006
    const change = await nextState(client, State.Reconnecting);
    expect(change.code).to.equal(1006);
    expect(await next).to.deep.include({ recovering: true, recovered: false, epoch: 'e2' });
    expect(sub.position).to.deep.equal({ offset: 0, epoch: 'e2' });
  });

  it('does not reconnect after 4001 without getToken: disconnected + UnauthorizedError', async () => {
    const client = make();
    const errors: HeraldError[] = [];
    client.on('error', (e) => errors.push(e));
    client.connect();
    await client.ready();
    const stopped = nextState(client, State.Disconnected);
    (await server.connection(1)).socket.close(4001, 'token expired');
    const change = await stopped;
    expect(change).to.include({ code: 4001, reason: 'token expired' });
    expect(errors[0]).to.be.instanceOf(UnauthorizedError);
    // Negative check: with a 10-40 ms backoff a reconnect would have happened many times over.
    await new Promise((r) => setTimeout(r, 300));
    expect(server.connections).to.have.length(1);
    expect(client.state).to.equal(State.Disconnected);
  });

  it('after 4001 reconnects with a fresh token from getToken', async () => {
    let n = 0;
    const client = make({ getToken: async () => `tok${++n}` });
    client.connect();
    await client.ready();
    expect((await server.connection(1)).url).to.contain('token=tok1');
    (await server.connection(1)).socket.close(4001, 'expired');
    const c2 = await server.connection(2);
    expect(c2.url).to.contain('token=tok2');
    await nextState(client, State.Connected);
    // A 1001 keeps the token: no extra getToken call.
    c2.socket.close(1001, 'bye');
    expect((await server.connection(3)).url).to.contain('token=tok2');
    expect(n).to.equal(2);
  });

  it('stops when getToken fails or returns nothing', async () => {
    const client = make({ getToken: () => '' });
    const errors: HeraldError[] = [];
    client.on('error', (e) => errors.push(e));
    client.connect();
    const change = await nextState(client, State.Disconnected);
    expect(change.code).to.equal(4001);
    expect(errors[0]).to.be.instanceOf(UnauthorizedError);
    expect(server.connections).to.have.length(0);
  });

  it('passes the token as a Sec-WebSocket-Protocol entry or as a first auth frame', async () => {
    const a = make({ token: 'jwt.a.b', tokenTransport: 'protocol', params: { user: 'al' } });
    a.connect();
    await a.ready();
    const c1 = await server.connection(1);
    expect(c1.protocols).to.equal('herald.v1,herald.token.jwt.a.b');
    expect(c1.url).to.equal('/ws?user=al');
    const b = make({ token: 'jwt.c.d', tokenTransport: 'frame' });
    b.connect();
    await b.ready();
    const c2 = await server.connection(2);
    await eventually(() => expect(c2.frames[0]).to.deep.equal({ type: 'auth', token: 'jwt.c.d' }));
    expect(c2.url).to.equal('/ws');
  });

  it('detects a dead link with the ping watchdog and reconnects', async () => {
    server.onFrame = () => {}; // never answers: a half-open link
    const client = make({ pingInterval: 50, pongTimeout: 100 });
    client.connect();
    await client.ready();
    const change = await nextState(client, State.Reconnecting);
    expect(change).to.include({ code: 4000, reason: 'ping timeout' });
    expect((await server.connection(1)).frames.some((f) => f.type === 'ping')).to.equal(true);
    await server.connection(2);
    await nextState(client, State.Connected);
  });

  it('keeps the link while pongs arrive', async () => {
    const client = make({ pingInterval: 30, pongTimeout: 200 });
    client.connect();
    await client.ready();
    const c1 = await server.connection(1);
    await eventually(() => expect(c1.frames.filter((f) => f.type === 'ping').length).to.be.at.least(3));
    expect(client.state).to.equal(State.Connected);
    expect(server.connections).to.have.length(1);
  });

  it('fails a connect attempt that gets no welcome within connectTimeout, then retries', async () => {
    server.autoWelcome = false;
    const client = make({ connectTimeout: 100 });
    client.connect();
    const change = await nextState(client, State.Reconnecting);
    expect(change).to.include({ code: 4000, reason: 'connect timeout' });
    server.autoWelcome = true;
    await nextState(client, State.Connected);
  });

  it('publish resolves with the ack, rejects on error frames and timeouts', async () => {
    server.onFrame = (conn, frame) => {
      const id = frame.id as number;
      if (frame.channel === 'ok') conn.send({ type: 'ack', id, offset: 5, epoch: 'e' });
      else if (frame.channel === 'no') conn.send({ type: 'error', id, code: 'forbidden', message: 'nope' });
      // channel 'slow': never answered
    };
    const client = make({ requestTimeout: 150 });
    client.connect();
    await client.ready();
    expect(await client.publish('ok', { x: 1 })).to.deep.equal({ offset: 5, epoch: 'e' });
    const denied = await client.publish('no', 1).catch((e: unknown) => e);
    expect(denied).to.be.instanceOf(ServerError);
    expect(denied).to.include({ code: 'forbidden', message: 'nope' });
    expect(await client.publish('slow', 1).catch((e: unknown) => e)).to.be.instanceOf(TimeoutError);
    const bad = await client.publish('bad channel!', 1).catch((e: unknown) => e);
    expect((bad as HeraldError).code).to.equal('bad_request');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(((await client.publish('ok', cyclic).catch((e: unknown) => e)) as HeraldError).code).to.equal('bad_request');
    expect(((await client.send('bob', undefined).catch((e: unknown) => e)) as HeraldError).code).to.equal('bad_request');
    const c1 = await server.connection(1);
    expect(c1.frames.find((f) => f.channel === 'ok')).to.deep.equal({ type: 'publish', channel: 'ok', data: { x: 1 }, id: 1 });
  });

  it('queues requests while reconnecting (bounded) and sends them after the welcome', async () => {
    server.autoWelcome = false;
    const client = make({ maxQueue: 2, connectTimeout: 5000 });
    client.connect();
    const p1 = client.publish('q', 1);
    const p2 = client.send('bob', 'hi');
    const p3 = client.publish('q', 3).catch((e: unknown) => e);
    expect(await p3).to.be.instanceOf(QueueFullError);
    expect(client.queued).to.equal(2);
    const c1 = await server.connection(1);
    expect(c1.frames).to.have.length(0);
    c1.send({ type: 'welcome', conn: 'c1', node: 'scripted', user: null, heartbeat: 25000 });
    await Promise.all([p1, p2]);
    expect(c1.frames.map((f) => f.type)).to.deep.equal(['publish', 'send']);
    expect(client.queued).to.equal(0);
  });

  it('rejects in-flight requests with ConnectionClosedError when the transport drops (no silent resend)', async () => {
    server.onFrame = () => {};
    const client = make();
    client.connect();
    await client.ready();
    const p = client.publish('room', 1).catch((e: unknown) => e);
    const c1 = await server.connection(1);
    await eventually(() => expect(c1.frames).to.have.length(1));
    c1.socket.close(1011, 'oops');
    const err = await p;
    expect(err).to.be.instanceOf(ConnectionClosedError);
    expect((err as ConnectionClosedError).closeCode).to.equal(1011);
    const c2 = await server.connection(2);
    await nextState(client, State.Connected);
    expect(c2.frames.filter((f) => f.type === 'publish')).to.have.length(0);
  });

  it('close() rejects queued requests and stops reconnecting', async () => {
    server.autoWelcome = false;
    const client = make();
    client.connect();
    const p = client.publish('q', 1).catch((e: unknown) => e);
    client.close();
    expect(await p).to.be.instanceOf(ClientClosedError);
    expect(client.state).to.equal(State.Disconnected);
  });

  it('stops on 1000 and 1008 from the server', async () => {
    for (const code of [1000, 1008]) {
      const client = make();
      client.connect();
      await client.ready();
      const stopped = nextState(client, State.Disconnected);
      server.connections.at(-1)!.socket.close(code, 'x');
      expect((await stopped).code).to.equal(code);
    }
  });

  it('waits at least rateLimitedDelay after 4029', async () => {
    const client = make({ rateLimitedDelay: 250 });
    client.connect();
    await client.ready();
    const next = nextState(client, State.Reconnecting);
    (await server.connection(1)).socket.close(4029, 'slow down');
    expect((await next).delay).to.be.at.least(250);
  });

  it('publishes and receives binary frames (ArrayBuffer and Uint8Array)', async () => {
    const client = make();
    const got: ChannelMessage[] = [];
    client.subscribe('files', { onMessage: (m) => got.push(m) });
    client.connect();
    await client.ready();
    await client.publish('files', new Uint8Array([1, 2, 3]));
    await client.publish('files', new Uint8Array([9, 8, 7, 6]).buffer);
    const c1 = await server.connection(1);
    await eventually(() => expect(c1.binaries).to.have.length(2));
    expect([...c1.binaries[0]!]).to.deep.equal([1, 0, 5, ...Buffer.from('files'), 1, 2, 3]);
    c1.socket.send(c1.binaries[1]!); // echo as the server would fan it out
    await eventually(() => expect(got).to.have.length(1));
    expect(got[0]!.binary).to.equal(true);
    expect(got[0]!.data).to.be.instanceOf(Uint8Array);
    expect([...(got[0]!.data as Uint8Array)]).to.deep.equal([9, 8, 7, 6]);
  });

  it('routes join/leave to the subscription, direct and error frames to the client', async () => {
    const client = make();
    const joins: string[] = [];
    const directs: unknown[] = [];
    const errors: HeraldError[] = [];
    client.subscribe('room', { onJoin: (e) => joins.push(`+${e.user}`), onLeave: (e) => joins.push(`-${e.user}`) });
    client.on('direct', (d) => directs.push(d));
    client.on('error', (e) => errors.push(e));
    client.connect();
    await client.ready();
    const c1 = await server.connection(1);
    c1.send({ type: 'join', channel: 'room', user: 'bob', conn: 'x' });
    c1.send({ type: 'leave', channel: 'room', user: 'bob', conn: 'x' });
    c1.send({ type: 'direct', from: 'bob', data: { hi: 1 } });
    c1.send({ type: 'error', code: 'bad_request', message: 'binary frames must start with 0x01' });
    c1.socket.send('not json'); // ignored
    await eventually(() => expect(errors).to.have.length(1));
    expect(joins).to.deep.equal(['+bob', '-bob']);
    expect(directs).to.deep.equal([{ from: 'bob', data: { hi: 1 } }]);
    expect(errors[0]).to.be.instanceOf(ServerError);
    expect(errors[0]!.code).to.equal('bad_request');
  });

  it('a refused subscription becomes unsubscribed with an error; unsubscribe() tells the server', async () => {
    server.onFrame = (conn, frame) => {
      const id = frame.id as number;
      if (frame.type === 'subscribe' && frame.channel === 'secret') conn.send({ type: 'error', id, code: 'forbidden', message: 'no' });
      else conn.send({ type: 'ack', id });
    };
    const client = make();
    client.connect();
    const secret = client.subscribe('secret');
    const err = await secret.ready().catch((e: unknown) => e);
    expect((err as HeraldError).code).to.equal('unsubscribed');
    expect(secret.state).to.equal(SubscriptionState.Unsubscribed);
    expect(client.getSubscription('secret')).to.equal(undefined);
    const open = client.subscribe('open');
    await open.ready();
    expect(() => client.subscribe('open')).to.throw(/already subscribed/);
    open.unsubscribe();
    expect(open.state).to.equal(SubscriptionState.Unsubscribed);
    const c1 = await server.connection(1);
    await eventually(() => expect(frameOf(c1, 'unsubscribe')).to.include({ channel: 'open' }));
  });

  it('presence resolves with members', async () => {
    server.onFrame = (conn, frame) =>
      conn.send({ type: 'ack', id: frame.id as number, members: [{ user: 'a', conn: '1' }] });
    const client = make();
    client.connect();
    expect(await client.presence('room')).to.deep.equal([{ user: 'a', conn: '1' }]);
  });

  it('maps an HTTP 401 upgrade answer to 4001', async () => {
    const http = await import('node:http');
    const srv = http.createServer();
    srv.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const client = make({}, `ws://127.0.0.1:${port}/ws`);
      client.on('error', () => {});
      client.connect();
      expect((await nextState(client, State.Disconnected)).code).to.equal(4001);
    } finally {
      srv.close();
    }
  });
});
