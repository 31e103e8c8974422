import { expect } from 'chai';
import { SignJWT, base64url } from 'jose';
import { Authenticator, TokenVerifier, TokenError, type HeraldWorker, type AuthMode, type TokenVerifierOptions } from '@herald/server';
import { TestClient, startInProcess, hsToken, testKeyPair, TEST_SECRET, waitFor } from './helpers/index.js';

describe('auth: token verifier', () => {
  it('accepts HS256 and maps sub, channels, publish and exp', async () => {
    const v = new TokenVerifier({ secret: TEST_SECRET, clockToleranceMs: 0 });
    const token = await hsToken('alice', { channels: ['room:*'], publish: ['room:1'] }, { expiresIn: 60 });
    const id = await v.verify(token);
    expect(id).to.deep.include({ user: 'alice', authenticated: true, channels: ['room:*'], publish: ['room:1'] });
    expect(id.expiresAt).to.be.within(Date.now() + 58_000, Date.now() + 61_000);
  });

  it('refuses a wrong secret, alg none, garbage, a missing or invalid sub and bad claims', async () => {
    const v = new TokenVerifier({ secret: TEST_SECRET });
    const refuse = async (token: string, what: RegExp = /invalid token/) => {
      const err = await v.verify(token).then(() => undefined, (e) => e);
      expect(err, token.slice(0, 40)).to.be.instanceOf(TokenError);
      expect(err.message).to.match(what);
    };
    await refuse(await hsToken('alice', {}, { secret: 'another-secret-another-secret-another' }));
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify({ sub: 'alice' }))}.`;
    await refuse(none);
    await refuse('not.a.jwt');
    await refuse('x'.repeat(20_000));
    await refuse(await hsToken(undefined), /sub/);
    await refuse(await hsToken('has space'), /sub/);
    await refuse(await hsToken('alice', { channels: 'room:*' }), /channels/);
    await refuse(await hsToken('alice', { publish: [1, 2] }), /publish/);
  });

  it('refuses expired tokens beyond the clock tolerance and accepts them within it', async () => {
    const token = await hsToken('alice', {}, { expiresIn: -10 });
    const strict = new TokenVerifier({ secret: TEST_SECRET, clockToleranceMs: 1000 });
    const err = await strict.verify(token).catch((e) => e);
    expect(err).to.be.instanceOf(TokenError).with.property('expired', true);
    const lenient = new TokenVerifier({ secret: TEST_SECRET, clockToleranceMs: 30_000 });
    expect((await lenient.verify(token)).user).to.equal('alice');
  });

  it('checks issuer and audience when configured', async () => {
    const v = new TokenVerifier({ secret: TEST_SECRET, issuer: 'https://auth.example.com', audience: 'herald' });
    await v.verify(await hsToken('alice')).then(() => expect.fail('accepted without iss'), (e) => expect(e).to.be.instanceOf(TokenError));
    expect((await v.verify(await hsToken('alice', { iss: 'https://auth.example.com', aud: 'herald' }))).user).to.equal('alice');
  });

  it('verifies RS256 with a PEM public key and ES256 with a JWKS, and refuses algorithm confusion', async () => {
    const rsa = await testKeyPair('RS256');
    const ec = await testKeyPair('ES256');
    const byPem = new TokenVerifier({ publicKeyPem: rsa.publicPem });
    expect((await byPem.verify(await rsa.sign('bob'))).user).to.equal('bob');
    expect(byPem.algorithms).to.deep.equal(['RS256']);
    // An HS256 token "signed" with the public key text must not pass as the secret.
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setExpirationTime('1h').sign(new TextEncoder().encode(rsa.publicPem));
    await byPem.verify(confused).then(() => expect.fail('alg confusion accepted'), (e) => expect(e).to.be.instanceOf(TokenError));
    await byPem.verify(await ec.sign('bob')).then(() => expect.fail('foreign key accepted'), (e) => expect(e).to.be.instanceOf(TokenError));

    const byJwks = new TokenVerifier({ jwks: { keys: [rsa.publicJwk, ec.publicJwk] as never } });
    expect((await byJwks.verify(await ec.sign('carol'))).user).to.equal('carol');
    expect((await byJwks.verify(await rsa.sign('dave'))).user).to.equal('dave');
    const other = await testKeyPair('ES256', 'unknown-kid');
    await byJwks.verify(await other.sign('eve')).then(() => expect.fail('unknown kid accepted'), (e) => expect(e).to.be.instanceOf(TokenError));
  });

  it('refuses unusable configurations', () => {
    expect(() => new TokenVerifier({})).to.throw(/secret, a public key or a JWKS/);
    expect(() => new TokenVerifier({ secret: 'short' })).to.throw(/32 bytes/);
    expect(() => new TokenVerifier({ publicKeyPem: 'nope' })).to.throw(/PEM/);
    expect(() => new Authenticator('required')).to.throw(/needs/);
  });
});

describe('auth: /ws with tokens (in-process worker)', () => {
  let worker: HeraldWorker | undefined;
  let base: string;
  const clients: TestClient[] = [];
  const start = async (mode: AuthMode, verifier: TokenVerifierOptions = { secret: TEST_SECRET }, authTimeoutMs = 5000) => {
    ({ worker, ws: base } = await startInProcess({ authenticator: new Authenticator({ mode, verifier: new TokenVerifier(verifier), authTimeoutMs }) }));
  };
  const keep = (c: TestClient) => (clients.push(c), c);
  const refused = (url: string, opts?: object) => TestClient.connect(url, opts).then((c) => (keep(c), expect.fail('upgrade accepted')), (e) => e.status as number);
  /** A bad browser-borne token (query, subprotocol): upgraded, then closed with 4001 and no welcome. */
  const closedUnauthorized = async (url: string, opts?: object) => {
    const c = keep(await TestClient.connect(url, opts as never));
    const { code } = await c.closed;
    expect(c.of('welcome')).to.have.length(0);
    return code;
  };

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await worker?.close();
    worker = undefined;
  });

  it('takes a token from Authorization: Bearer, ?token= and a herald.token.<jwt> subprotocol', async () => {
    await start('required');
    const token = await hsToken('alice');
    const a = keep(await TestClient.open(`${base}/ws`, { headers: { Authorization: `Bearer ${token}` } }));
    expect(a.welcome).to.deep.include({ type: 'welcome', user: 'alice' });
    const b = keep(await TestClient.open(`${base}/ws?token=${token}`));
    expect(b.welcome!.user).to.equal('alice');
    // The subprotocol entry is covered by the next test (it needs the protocols argument of ws).
  });

  it('answers a bad header token with 401 before the upgrade, and a bad browser token with close 4001', async () => {
    await start('required');
    const bad = await hsToken('alice', {}, { secret: 'wrong-secret-wrong-secret-wrong-secret' });
    const expired = await hsToken('alice', {}, { expiresIn: -60 });
    expect(await refused(`${base}/ws`, { headers: { Authorization: `Bearer ${bad}` } })).to.equal(401);
    expect(await refused(`${base}/ws`, { headers: { Authorization: 'Basic YWxpY2U6cHc=' } })).to.equal(401);
    // Browsers cannot read an HTTP status of a failed upgrade, so ?token= and subprotocol tokens get a close code.
    expect(await closedUnauthorized(`${base}/ws?token=${expired}`)).to.equal(4001);
    expect(await closedUnauthorized(`${base}/ws?token=garbage`)).to.equal(4001);
    expect(await closedUnauthorized(`${base}/echo?token=${bad}`)).to.equal(4001);
    expect(await refused(`${base}/echo`)).to.equal(401);
  });

  it('selects the herald.v1 subprotocol and never echoes the token entry', async () => {
    await start('required');
    const token = await hsToken('alice');
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`${base}/ws`, ['herald.v1', `herald.token.${token}`]);
    ws.on('error', () => undefined);
    const message = waitFor<[Buffer]>(ws, 'message');
    const [res] = await waitFor<[import('node:http').IncomingMessage]>(ws, 'upgrade');
    expect(res.headers['sec-websocket-protocol']).to.equal('herald.v1');
    const [data] = await message;
    expect(JSON.parse(data.toString())).to.deep.include({ type: 'welcome', user: 'alice' });
    ws.close();
    await waitFor(ws, 'close');
    const badProto = await closedUnauthorized(`${base}/ws`, ['herald.v1', 'herald.token.garbage']);
    expect(badProto).to.equal(4001);
  });

  it('waits for an auth frame: nothing but auth/ping before it, welcome then ack after it', async () => {
    await start('required');
    const c = keep(await TestClient.connect(`${base}/ws`));
    expect(await c.request({ type: 'subscribe', channel: 'room:1' })).to.deep.include({ type: 'error', code: 'unauthorized' });
    c.send({ type: 'ping', id: 2 });
    expect(await c.waitFrame((f) => f.type === 'pong')).to.deep.equal({ type: 'pong', id: 2 });
    expect(c.welcome).to.equal(undefined);
    const ack = await c.request({ type: 'auth', token: await hsToken('alice') });
    expect(ack.type).to.equal('ack');
    const welcomeAt = c.frames.findIndex((f) => f.type === 'welcome');
    expect(welcomeAt).to.be.above(-1).and.below(c.frames.indexOf(ack));
    expect(c.welcome!.user).to.equal('alice');
    expect(await c.request({ type: 'subscribe', channel: 'room:1' })).to.deep.include({ type: 'ack' });
    expect(await c.request({ type: 'auth', token: await hsToken('alice') })).to.deep.include({ type: 'error', code: 'bad_request' });
  });

  it('handles frames sent right behind the auth frame after it, in order', async () => {
    await start('required');
    const c = keep(await TestClient.connect(`${base}/ws`));
    c.send({ type: 'auth', token: await hsToken('alice'), id: 1 });
    c.send({ type: 'subscribe', channel: 'room:q', id: 2 });
    c.send({ type: 'ping', id: 3 });
    await c.waitFrame((f) => f.type === 'ack' && f.id === 2);
    await c.waitFrame((f) => f.type === 'pong' && f.id === 3);
    // The welcome comes first, the auth ack right after it; nothing was refused as unauthenticated.
    expect(c.frames.slice(0, 2).map((f) => `${f.type}:${f.id ?? ''}`)).to.deep.equal(['welcome:', 'ack:1']);
    expect(c.of('error')).to.deep.equal([]);
  });

  it('closes with 4001 on a bad auth frame and at the auth deadline', async () => {
    await start('required', { secret: TEST_SECRET }, 300);
    const bad = keep(await TestClient.connect(`${base}/ws`));
    bad.send({ type: 'auth', token: 'garbage' });
    expect((await bad.closed).code).to.equal(4001);
    const silent = keep(await TestClient.connect(`${base}/ws`));
    const t0 = Date.now();
    expect(await silent.closed).to.deep.equal({ code: 4001, reason: 'authentication timeout' });
    expect(Date.now() - t0).to.be.within(200, 2000);
    expect(silent.welcome).to.equal(undefined);
  });

  it('closes with 4001 when the token expires during the session', async () => {
    await start('required', { secret: TEST_SECRET, clockToleranceMs: 0 });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(exp).sign(new TextEncoder().encode(TEST_SECRET));
    const c = keep(await TestClient.open(`${base}/ws?token=${token}`));
    expect(await c.request({ type: 'subscribe', channel: 'room:e' })).to.deep.include({ type: 'ack' });
    const { code } = await c.closed;
    expect(code).to.equal(4001);
    expect(Date.now()).to.be.within(exp * 1000 - 50, exp * 1000 + 1000);
  });

  it('closes /echo with 4001 at the token expiry too', async () => {
    await start('required', { secret: TEST_SECRET, clockToleranceMs: 0 });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(exp).sign(new TextEncoder().encode(TEST_SECRET));
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`${base}/echo`, { headers: { Authorization: `Bearer ${token}` } });
    ws.on('error', () => undefined);
    const [code] = await waitFor<[number]>(ws, 'close', 5000);
    expect(code).to.equal(4001);
    expect(Date.now()).to.be.within(exp * 1000 - 50, exp * 1000 + 1000);
  });

  it('mode optional: no token is anonymous, a bad token is refused (4001), an auth frame upgrades the identity', async () => {
    await start('optional');
    const anon = keep(await TestClient.open(`${base}/ws?user=mallory`));
    expect(anon.welcome!.user).to.equal(null); // ?user= is honoured only in mode none
    expect(await closedUnauthorized(`${base}/ws?token=garbage`)).to.equal(4001);
    expect(await refused(`${base}/ws`, { headers: { Authorization: 'Bearer garbage' } })).to.equal(401);
    const ack = await anon.request({ type: 'auth', token: await hsToken('alice') });
    expect(ack.type).to.equal('ack');
    expect(anon.of('welcome').map((w) => w.user)).to.deep.equal([null, 'alice']);
    expect(anon.of('welcome')[1]!.conn).to.equal(anon.of('welcome')[0]!.conn);
    // After a subscription the identity can no longer change.
    const other = keep(await TestClient.open(`${base}/ws`));
    await other.request({ type: 'subscribe', channel: 'room:x' });
    expect(await other.request({ type: 'auth', token: await hsToken('bob') })).to.deep.include({ type: 'error', code: 'bad_request' });
  });

  it('mode none ignores tokens and refuses auth frames as bad_request', async () => {
    ({ worker, ws: base } = await startInProcess());
    const c = keep(await TestClient.open(`${base}/ws?user=alice&token=whatever`));
    expect(c.welcome!.user).to.equal('alice');
    expect(await c.request({ type: 'auth', token: 'x' })).to.deep.include({ type: 'error', code: 'bad_request' });
  });

  it('accepts RS256 tokens with a public key and ES256 with a JWKS at the upgrade', async () => {
    const rsa = await testKeyPair('RS256');
    const ec = await testKeyPair('ES256');
    await start('required', { publicKeyPem: rsa.publicPem, jwks: { keys: [ec.publicJwk] as never } });
    expect(keep(await TestClient.open(`${base}/ws?token=${await rsa.sign('rita')}`)).welcome!.user).to.equal('rita');
    expect(keep(await TestClient.open(`${base}/ws?token=${await ec.sign('eric')}`)).welcome!.user).to.equal('eric');
  });
});
