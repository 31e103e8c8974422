import { expect } from 'chai';
import { Authenticator, TokenVerifier, globMatch, canSubscribe, canPublish, DEFAULT_NAMESPACE, type HeraldWorker } from '@herald/server';
import { TestClient, startInProcess, hsToken, TEST_SECRET } from './helpers/index.js';

describe('security: channel permission rules', () => {
  it('matches globs whole, never by prefix or substring', () => {
    expect(globMatch('room:*', 'room:1')).to.equal(true);
    expect(globMatch('room:*', 'room:')).to.equal(true);
    expect(globMatch('room:*', 'roomx:1')).to.equal(false);
    expect(globMatch('room:1', 'room:10')).to.equal(false);
    expect(globMatch('user:*:inbox', 'user:bob:inbox')).to.equal(true);
    expect(globMatch('user:*:inbox', 'user:bob:inbox:x')).to.equal(false);
    expect(globMatch('*', 'anything')).to.equal(true);
    expect(globMatch('a*b*c', 'abc')).to.equal(true);
    expect(globMatch('a*bc*c', 'abc')).to.equal(false);
  });

  it('applies claims and namespace rules', () => {
    const ns = DEFAULT_NAMESPACE;
    const alice = { user: 'alice', authenticated: true, channels: ['room:*'], publish: ['room:1'] };
    expect(canSubscribe(alice, 'room:2', ns)).to.equal(undefined);
    expect(canSubscribe(alice, 'admin:1', ns)).to.be.a('string');
    expect(canPublish(alice, 'room:1', ns)).to.equal(undefined);
    expect(canPublish(alice, 'room:2', ns)).to.be.a('string');
    expect(canPublish(alice, 'room:1', { ...ns, clientPublish: false })).to.be.a('string');
    const named = { user: 'bob', authenticated: false };
    expect(canSubscribe(named, 'x:1', { ...ns, requireAuth: true })).to.be.a('string');
    expect(canSubscribe(named, 'x:1', ns)).to.equal(undefined);
  });
});

describe('security: channel permissions on /ws (in-process worker)', () => {
  let worker: HeraldWorker;
  let base: string;
  const clients: TestClient[] = [];
  const open = async (token?: string) => {
    const c = await TestClient.open(`${base}/ws${token ? `?token=${token}` : ''}`);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    ({ worker, ws: base } = await startInProcess({
      authenticator: new Authenticator({ mode: 'optional', verifier: new TokenVerifier({ secret: TEST_SECRET }) }),
      namespaces: { private: { requireAuth: true }, news: { clientPublish: false } },
    }));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker.close();
  });

  it('refuses channels outside the token\'s channels/publish claims with forbidden, and the connection stays', async () => {
    const c = await open(await hsToken('alice', { channels: ['room:*', 'news:*'], publish: ['room:1'] }));
    expect(await c.request({ type: 'subscribe', channel: 'room:7' })).to.deep.include({ type: 'ack' });
    expect(await c.request({ type: 'subscribe', channel: 'secret:1' })).to.deep.include({ type: 'error', code: 'forbidden', id: 2 });
    expect(await c.request({ type: 'presence', channel: 'secret:1' })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'publish', channel: 'room:7', data: 1 })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).to.deep.include({ type: 'ack' });
    // A binary publish goes through the same check.
    const { encodeBinaryFrame } = await import('@herald/protocol');
    c.ws.send(encodeBinaryFrame('room:7', Buffer.from('x')));
    expect(await c.waitFrame((f) => f.type === 'error' && f.id === undefined)).to.deep.include({ code: 'forbidden' });
    c.send({ type: 'ping', id: 50 });
    await c.waitFrame((f) => f.type === 'pong' && f.id === 50);
    expect(c.ws.readyState).to.equal(c.ws.OPEN);
  });

  it('applies per-namespace requireAuth and clientPublish', async () => {
    const anon = await open();
    const alice = await open(await hsToken('alice'));
    expect(await anon.request({ type: 'subscribe', channel: 'private:1' })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await anon.request({ type: 'publish', channel: 'private:1', data: 1 })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await alice.request({ type: 'subscribe', channel: 'private:1' })).to.deep.include({ type: 'ack' });
    expect(await alice.request({ type: 'publish', channel: 'news:1', data: 1 })).to.deep.include({ type: 'error', code: 'forbidden' });
    expect(await alice.request({ type: 'subscribe', channel: 'news:1' })).to.deep.include({ type: 'ack' });
    expect(await anon.request({ type: 'subscribe', channel: 'room:1' })).to.deep.include({ type: 'ack' });
  });
});
