import { expect } from 'chai';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { Client, State, UnauthorizedError, type ClientOptions, type HeraldError, type TokenTransport } from '@herald/client';
import { startWorker, type WorkerProcess } from './helpers/index.js';
import { nextState } from './helpers/client-state.js';

const SECRET = 'client-test-secret-0123456789-abcdefghij';
const key = new TextEncoder().encode(SECRET);

/** An HS256 token for `sub` that expires `ttlMs` from now. */
function token(sub: string, ttlMs: number): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(new Date(Date.now() + ttlMs)).sign(key);
}


describe('client auth against a worker process (HERALD_AUTH=required)', function () {
  this.timeout(30_000);
  let worker: WorkerProcess;
  const clients: Client[] = [];

  beforeEach(async () => {
    worker = await startWorker({ HERALD_AUTH: 'required', HERALD_JWT_SECRET: SECRET, HERALD_JWT_CLOCK_TOLERANCE_MS: '0' });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await worker.stop('SIGKILL');
  });

  const client = (options: ClientOptions) => {
    const c = new Client(`${worker.wsUrl}/ws`, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 100, ...options });
    clients.push(c);
    return c;
  };

  for (const tokenTransport of ['query', 'protocol', 'frame'] as TokenTransport[]) {
    it(`authenticates with the token as ${tokenTransport}`, async () => {
      const c = client({ token: await token('alice', 60_000), tokenTransport });
      c.connect();
      expect(await c.ready()).to.include({ user: 'alice', node: worker.node });
    });
  }

  it('does not reconnect after the token expires (4001) without getToken', async () => {
    const c = client({ token: await token('alice', 1500) });
    const errors: HeraldError[] = [];
    c.on('error', (e) => errors.push(e));
    c.connect();
    await c.ready();
    const stopped = await nextState(c, State.Disconnected);
    expect(stopped).to.include({ code: 4001 });
    expect(errors[0]).to.be.instanceOf(UnauthorizedError);
    // Negative check: with a 20-100 ms backoff a reconnect would have happened many times over.
    const states: string[] = [];
    c.on('state', (s) => states.push(s.newState));
    await new Promise((r) => setTimeout(r, 500));
    expect(states).to.deep.equal([]);
    expect(c.state).to.equal(State.Disconnected);
  });

  it('reconnects with a fresh token from getToken after 4001', async () => {
    const issued: string[] = [];
    const c = client({
      getToken: async () => {
        const t = await token('bob', issued.length === 0 ? 1500 : 60_000);
        issued.push(t);
        return t;
      },
    });
    c.connect();
    await c.ready();
    const lost = await nextState(c, State.Reconnecting);
    expect(lost.code).to.equal(4001);
    const again = new Promise((resolve) => c.once('welcome', resolve));
    expect(await again).to.include({ user: 'bob' });
    expect(issued).to.have.length(2);
  });

  it('stops on an invalid token (closed with 4001 right after the upgrade)', async () => {
    const c = client({ token: 'not.a.jwt' });
    c.on('error', () => {});
    c.connect();
    expect((await nextState(c, State.Disconnected)).code).to.equal(4001);
  });
});
