import { expect } from 'chai';
import { connect } from 'node:net';
import { once } from 'node:events';
import { ConfigError, SharedEnv, parseEnv } from '@herald/shared';
import { loadConfig as loadWorkerConfig, type HeraldWorker } from '@herald/server';
import { loadConfig as loadBalancerConfig } from '@herald/balancer';
import { HttpErrorCode } from '@herald/protocol';
import { z } from 'zod';
import { freePort, startInProcess, upgradeRequest } from './helpers/index.js';
import { startBalancer, type BalancerProcess } from './helpers/balancer.js';

/** Raw HTTP exchange on a fresh socket: status and parsed JSON body of the answer. */
async function exchange(port: number, request: string): Promise<{ status: number; body: unknown }> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(request);
  await once(socket, 'close');
  const text = Buffer.concat(chunks).toString('utf8');
  const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
  return { status: Number(head.split(' ')[1]), body: JSON.parse(body) };
}

/** Whether a loader accepts `env`; the ConfigError message otherwise. */
function outcome(load: () => unknown): string {
  try {
    load();
    return 'ok';
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return 'error';
  }
}

describe('@herald/shared: one rule per variable, one error body', () => {
  describe('env rules shared by worker and balancer', () => {
    const cases: Array<[string, string]> = [
      ['REDIS_URL', 'redis://127.0.0.1:6379'],
      ['REDIS_URL', 'rediss://user:pw@redis.example:6380/2'],
      ['REDIS_URL', 'http://127.0.0.1:6379'],
      ['REDIS_URL', 'localhost:6379'],
      ['REDIS_URL', 'redis://bad host'],
      ['PORT', '0'],
      ['PORT', '65536'],
      ['PORT', 'eighty'],
      ['HERALD_TRUSTED_PROXIES', 'loopback,10.0.0.0/8'],
      ['HERALD_TRUSTED_PROXIES', '10.0.0.0/40'],
      ['HERALD_DRAIN_MS', '1.5'],
      ['HERALD_HANDSHAKE_TIMEOUT_MS', '50'],
      ['HERALD_MAX_CONNECTIONS_PER_IP', '-1'],
      ['LOG_LEVEL', 'loud'],
    ];
    for (const [name, value] of cases) {
      it(`${name}=${value} is judged the same by worker and balancer`, () => {
        const alone = outcome(() => parseEnv(z.object({ [name]: SharedEnv[name as keyof typeof SharedEnv] }), { [name]: value }));
        // REDIS_URL doubles as the balancer's worker source: give it a static list so only the rule decides.
        const worker = outcome(() => loadWorkerConfig({ [name]: value }));
        const balancer = outcome(() => loadBalancerConfig({ HERALD_WORKERS: '127.0.0.1:1', [name]: value }));
        expect({ worker, balancer }).to.deep.equal({ worker: alone, balancer: alone });
      });
    }

    it('accepts only redis:// and rediss:// for REDIS_URL, naming the variable', () => {
      expect(() => loadWorkerConfig({ REDIS_URL: 'http://x:6379' })).to.throw(ConfigError, /REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
      expect(() => loadBalancerConfig({ REDIS_URL: 'http://x:6379' })).to.throw(ConfigError, /REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
    });
  });

  describe('HTTP refusals carry {"error":{"code","message"}}', () => {
    let worker: HeraldWorker | undefined;
    let balancer: BalancerProcess | undefined;
    afterEach(async () => {
      await worker?.close();
      await balancer?.stop();
      worker = balancer = undefined;
    });

    const expectBody = (body: unknown, code: HttpErrorCode) => {
      expect(body).to.have.all.keys('error');
      const error = (body as { error: Record<string, unknown> }).error;
      expect(error).to.have.all.keys('code', 'message');
      expect(error.code).to.equal(code);
      expect(error.message).to.be.a('string').and.not.equal('');
    };

    it('the worker, for an upgrade refusal, an HTTP 404 and an API refusal', async () => {
      const started = await startInProcess({ allowedOrigins: ['https://ok.example'] });
      worker = started.worker;
      const notFound = await exchange(started.port, upgradeRequest('/nowhere'));
      expect(notFound.status).to.equal(404);
      expectBody(notFound.body, HttpErrorCode.NotFound);
      const origin = await exchange(started.port, upgradeRequest('/ws', ['Origin: https://evil.example']));
      expect(origin.status).to.equal(403);
      expectBody(origin.body, HttpErrorCode.Forbidden);
      const http404 = await exchange(started.port, 'GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(http404.status).to.equal(404);
      expectBody(http404.body, HttpErrorCode.NotFound);
      const api = await exchange(started.port, 'GET /api/presence?channel=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(api.status).to.equal(401);
      expectBody(api.body, HttpErrorCode.Unauthorized);
    });

    it('the balancer, for an upgrade and a request with no worker', async () => {
      balancer = await startBalancer({ HERALD_WORKERS: `127.0.0.1:${await freePort()}` });
      const upgrade = await exchange(balancer.port, upgradeRequest('/ws'));
      expect(upgrade.status).to.be.oneOf([502, 503]);
      expectBody(upgrade.body, upgrade.status === 502 ? HttpErrorCode.BadGateway : HttpErrorCode.NoWorker);
      const notWs = await exchange(balancer.port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
      expect(notWs.status).to.equal(400);
      expectBody(notWs.body, HttpErrorCode.BadRequest);
    });
  });
});
