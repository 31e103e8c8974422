import { IpConnectionLimit } from '@herald/shared';
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  TrustedProxies,
  WorkerPool,
  clientAddress,
  loadConfig,
  parseSticky,
  parseWorkerAddress,
  readCookie,
  setForwardedHeaders,
  stickyKey,
  type StateChange,
} from '@herald/balancer';

const BIN = fileURLToPath(new URL('../packages/balancer/dist/bin/herald-balancer.js', import.meta.url));

/** A request-shaped object: only the fields these pure functions read. */
function request(url: string, headers: Record<string, string | string[]>, remoteAddress = '203.0.113.7'): IncomingMessage {
  return { url, headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

describe('balancer configuration and request keys (unit)', () => {
  describe('loadConfig', () => {
    it('applies the documented defaults', () => {
      const config = loadConfig({ HERALD_WORKERS: '127.0.0.1:3001, 127.0.0.1:3002' });
      expect(config.port).to.equal(8080);
      expect(config.host).to.equal('0.0.0.0');
      expect(config.workers).to.deep.equal(['127.0.0.1:3001', '127.0.0.1:3002']);
      expect(config.redisUrl).to.equal(undefined);
      expect(config.redisPrefix).to.equal('herald:');
      expect(config.discoveryIntervalMs).to.equal(1000);
      expect(config.sticky).to.deep.equal({ kind: 'query', name: 'sid' });
      expect(config.trustedProxies.entries).to.deep.equal([]);
      expect(config.healthPath).to.equal('/readyz');
      expect(config.healthIntervalMs).to.equal(1000);
      expect(config.healthTimeoutMs).to.equal(1000);
      expect(config.healthRise).to.equal(2);
      expect(config.healthFall).to.equal(2);
      expect(config.maxConnectionsPerIp).to.equal(1000);
      expect(config.maxConnections).to.equal(10_000);
      expect(config.retries).to.equal(2);
      expect(config.handshakeTimeoutMs).to.equal(10_000);
      expect(config.upstreamTimeoutMs).to.equal(30_000);
      expect(config.drainMs).to.equal(10_000);
      expect(config.relay).to.equal('auto');
      expect(config.logLevel).to.equal('info');
      expect(config.balancerId).to.match(new RegExp(`-${process.pid}-[0-9a-f]{6}$`));
    });

    it('takes HERALD_BALANCER_ID and rejects one that could not be sent as a header tag', () => {
      expect(loadConfig({ HERALD_WORKERS: '127.0.0.1:3001', HERALD_BALANCER_ID: 'edge-1' }).balancerId).to.equal('edge-1');
      expect(() => loadConfig({ HERALD_WORKERS: '127.0.0.1:3001', HERALD_BALANCER_ID: 'bad id\n' })).to.throw(/HERALD_BALANCER_ID/);
    });

    it('reads every variable', () => {
      const config = loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: 'redis://127.0.0.1:7000/2',
        HERALD_REDIS_PREFIX: 't1:',
        HERALD_DISCOVERY_INTERVAL_MS: '200',
        HERALD_STICKY: 'cookie:herald_sid',
        HERALD_TRUSTED_PROXIES: 'loopback,10.0.0.0/8',
        HERALD_HEALTH_PATH: '/healthz',
        HERALD_HEALTH_INTERVAL_MS: '250',
        HERALD_HEALTH_TIMEOUT_MS: '300',
        HERALD_HEALTH_RISE: '3',
        HERALD_HEALTH_FALL: '1',
        HERALD_MAX_CONNECTIONS_PER_IP: '0',
        HERALD_MAX_CONNECTIONS: '5',
        HERALD_RETRIES: '0',
        HERALD_HANDSHAKE_TIMEOUT_MS: '500',
        HERALD_UPSTREAM_TIMEOUT_MS: '600',
        HERALD_DRAIN_MS: '0',
        HERALD_RELAY: 'js',
        LOG_LEVEL: 'warn',
      });
      expect(config).to.include({ port: 0, host: '127.0.0.1', redisUrl: 'redis://127.0.0.1:7000/2', redisPrefix: 't1:' });
      expect(config).to.include({ discoveryIntervalMs: 200, healthPath: '/healthz', healthIntervalMs: 250, healthTimeoutMs: 300 });
      expect(config).to.include({ healthRise: 3, healthFall: 1, maxConnectionsPerIp: 0, maxConnections: 5, retries: 0 });
      expect(config).to.include({ handshakeTimeoutMs: 500, upstreamTimeoutMs: 600, drainMs: 0, relay: 'js', logLevel: 'warn' });
      expect(config.sticky).to.deep.equal({ kind: 'cookie', name: 'herald_sid' });
      expect(config.workers).to.deep.equal([]);
    });

    it('treats empty variables as unset', () => {
      const config = loadConfig({ HERALD_WORKERS: '', REDIS_URL: 'redis://r:6379', PORT: '', HERALD_STICKY: '' });
      expect(config.port).to.equal(8080);
      expect(config.sticky.kind).to.equal('query');
    });

    const invalid: Array<[string, Record<string, string>, RegExp]> = [
      ['no worker source', {}, /HERALD_WORKERS: set HERALD_WORKERS .* or REDIS_URL/],
      ['a bad worker address', { HERALD_WORKERS: '127.0.0.1' }, /HERALD_WORKERS: expected host:port/],
      ['a port out of range', { HERALD_WORKERS: 'w:70000' }, /HERALD_WORKERS/],
      ['a bad PORT', { HERALD_WORKERS: 'w:1', PORT: 'eighty' }, /PORT/],
      ['a bad sticky mode', { HERALD_WORKERS: 'w:1', HERALD_STICKY: 'session' }, /HERALD_STICKY: expected query:NAME/],
      ['a bad trusted proxy', { HERALD_WORKERS: 'w:1', HERALD_TRUSTED_PROXIES: '10.0.0.0/40' }, /HERALD_TRUSTED_PROXIES/],
      ['a bad REDIS_URL', { REDIS_URL: 'localhost:6379' }, /REDIS_URL/],
      ['a zero rise', { HERALD_WORKERS: 'w:1', HERALD_HEALTH_RISE: '0' }, /HERALD_HEALTH_RISE/],
      ['an unknown relay', { HERALD_WORKERS: 'w:1', HERALD_RELAY: 'kernel' }, /HERALD_RELAY/],
      ['a bad log level', { HERALD_WORKERS: 'w:1', LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    ];
    for (const [what, env, message] of invalid) {
      it(`rejects ${what} with a clear message`, () => {
        expect(() => loadConfig(env)).to.throw(ConfigError, message);
      });
    }

    it('lists every invalid variable at once', () => {
      try {
        loadConfig({ HERALD_WORKERS: 'w:1', PORT: '-1', HERALD_HEALTH_FALL: 'x' });
        expect.fail('should throw');
      } catch (error) {
        expect((error as Error).message).to.match(/PORT/).and.to.match(/HERALD_HEALTH_FALL/);
      }
    });

    it('the bin prints the message and exits 1 on invalid configuration', () => {
      const result = spawnSync(process.execPath, [BIN], {
        env: { PATH: process.env.PATH ?? '', HERALD_STICKY: 'bogus', HERALD_WORKERS: '127.0.0.1:1' },
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect(result.status).to.equal(1);
      expect(result.stderr).to.match(/herald-balancer: invalid balancer configuration/).and.to.match(/HERALD_STICKY/);
    });
  });

  it('the bin exits 1 with one line naming EADDRINUSE and PORT=0 when its port is taken', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [BIN], {
        env: { PATH: process.env.PATH ?? '', HERALD_WORKERS: '127.0.0.1:1', HOST: '127.0.0.1', PORT: String(port), HERALD_HEALTH_TIMEOUT_MS: '100' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).to.equal(1);
      // One line for the operator (issue 15: no stack traces, name the fix).
      const lines = err.split('\n').filter(Boolean);
      expect(lines, err).to.have.lengthOf(1);
      expect(lines[0]).to.match(/EADDRINUSE/).and.to.include('PORT=0');
    } finally {
      blocker.close();
    }
  });

  describe('sticky keys', () => {
    it('parses every mode and rejects others', () => {
      expect(parseSticky('query:sid')).to.deep.equal({ kind: 'query', name: 'sid' });
      expect(parseSticky('cookie:hsid')).to.deep.equal({ kind: 'cookie', name: 'hsid' });
      expect(parseSticky('header:X-Session')).to.deep.equal({ kind: 'header', name: 'x-session' });
      expect(parseSticky('ip')).to.deep.equal({ kind: 'ip' });
      for (const bad of ['', 'query', 'query:', 'cookie:a b', 'path:x', 'ip:x']) expect(() => parseSticky(bad), bad).to.throw();
    });

    it('reads the key from the query, a cookie or a header', () => {
      expect(stickyKey(request('/ws?x=1&sid=abc', {}), parseSticky('query:sid'))).to.equal('abc');
      expect(stickyKey(request('/ws?sid=', {}), parseSticky('query:sid'))).to.equal(undefined);
      expect(stickyKey(request('/ws', {}), parseSticky('query:sid'))).to.equal(undefined);
      expect(stickyKey(request('/', { cookie: 'a=1; hsid=xyz; b=2' }), parseSticky('cookie:hsid'))).to.equal('xyz');
      expect(stickyKey(request('/', { 'x-session': 's1' }), parseSticky('header:X-Session'))).to.equal('s1');
      expect(stickyKey(request('/?sid=a', {}), parseSticky('ip'))).to.equal(undefined);
    });

    it('reads cookies per RFC 6265', () => {
      expect(readCookie(undefined, 'a')).to.equal(undefined);
      expect(readCookie('a=1;b="two"', 'b')).to.equal('two');
      expect(readCookie('ab=1; a=2', 'a')).to.equal('2');
      expect(readCookie('garbage; a', 'a')).to.equal(undefined);
    });
  });

  describe('client address and forwarded headers', () => {
    it('ignores X-Forwarded-For from untrusted peers', () => {
      const trusted = new TrustedProxies([]);
      expect(clientAddress(request('/', { 'x-forwarded-for': '1.2.3.4' }), trusted)).to.equal('203.0.113.7');
    });

    it('walks X-Forwarded-For from the right while hops are trusted', () => {
      const trusted = new TrustedProxies(['loopback', '10.0.0.0/8']);
      const req = request('/', { 'x-forwarded-for': '6.6.6.6, 198.51.100.9, 10.1.2.3' }, '::ffff:127.0.0.1');
      expect(clientAddress(req, trusted)).to.equal('198.51.100.9');
      expect(clientAddress(request('/', {}, '127.0.0.1'), trusted)).to.equal('127.0.0.1');
      expect(clientAddress(request('/', { 'x-forwarded-for': 'junk' }, '127.0.0.1'), trusted)).to.equal('127.0.0.1');
    });

    it('accepts addresses, CIDRs and groups, and rejects garbage', () => {
      const trusted = new TrustedProxies(['192.0.2.1', 'private', '2001:db8::/32']);
      expect(trusted.has('192.0.2.1')).to.equal(true);
      expect(trusted.has('192.0.2.2')).to.equal(false);
      expect(trusted.has('172.20.0.5')).to.equal(true);
      expect(trusted.has('2001:db8::1')).to.equal(true);
      expect(trusted.has('::ffff:192.168.1.1')).to.equal(true);
      expect(() => new TrustedProxies(['proxy.local'])).to.throw(/invalid trusted proxy/);
    });

    it('replaces X-Forwarded-* from untrusted peers and extends them from trusted ones', () => {
      const untrusted = request('/', { host: 'h', 'x-forwarded-for': '1.1.1.1', 'x-forwarded-proto': 'https' });
      setForwardedHeaders(untrusted, new TrustedProxies([]), false);
      expect(untrusted.headers['x-forwarded-for']).to.equal('203.0.113.7');
      expect(untrusted.headers['x-forwarded-proto']).to.equal('http');
      expect(untrusted.headers['x-forwarded-host']).to.equal('h');
      const viaProxy = request('/', { host: 'h', 'x-forwarded-for': '1.1.1.1', 'x-forwarded-proto': 'https' }, '127.0.0.1');
      setForwardedHeaders(viaProxy, new TrustedProxies(['loopback']), false);
      expect(viaProxy.headers['x-forwarded-for']).to.equal('1.1.1.1, 127.0.0.1');
      expect(viaProxy.headers['x-forwarded-proto']).to.equal('https');
    });
  });

  describe('worker addresses, pool and limiter', () => {
    it('parses host:port', () => {
      expect(parseWorkerAddress('worker:8080')).to.deep.equal({ host: 'worker', port: 8080 });
      expect(parseWorkerAddress('[::1]:3000')).to.deep.equal({ host: '::1', port: 3000 });
      for (const bad of ['worker', ':80', 'w:0', 'w:x', 'http://w:1']) expect(() => parseWorkerAddress(bad), bad).to.throw();
    });

    it('runs the health state machine with rise and fall', () => {
      const changes: StateChange[] = [];
      const pool = new WorkerPool({ rise: 2, fall: 2 }, (c) => changes.push(c));
      const { added } = pool.sync('static', [{ address: 'a:1' }]);
      const w = added[0]!;
      expect(w.state).to.equal('unknown');
      expect(pool.healthy()).to.deep.equal([]);
      pool.recordSuccess(w);
      expect(w.state).to.equal('healthy');
      pool.recordFailure(w, 'status 500');
      expect(w.state).to.equal('healthy');
      pool.recordFailure(w, 'status 500');
      expect(w.state).to.equal('unhealthy');
      pool.recordSuccess(w);
      expect(w.state).to.equal('unhealthy');
      pool.recordSuccess(w);
      expect(w.state).to.equal('healthy');
      pool.markDraining(w, 'status 503: draining');
      expect(w.state).to.equal('draining');
      expect(pool.healthy()).to.deep.equal([]);
      pool.recordFailure(w, 'ECONNREFUSED');
      expect(w.state).to.equal('unhealthy');
      pool.recordSuccess(w);
      pool.recordSuccess(w);
      pool.markDown(w, 'ECONNREFUSED');
      expect(w.state).to.equal('unhealthy');
      expect(changes.map((c) => c.to)).to.deep.equal(['healthy', 'unhealthy', 'healthy', 'draining', 'unhealthy', 'healthy', 'unhealthy']);
    });

    it('forgets a worker only when no source lists it', () => {
      const pool = new WorkerPool({ rise: 1, fall: 1 });
      pool.sync('static', [{ address: 'a:1' }]);
      pool.sync('redis', [{ address: 'a:1', nodeId: 'n1' }, { address: 'b:1', nodeId: 'n2' }]);
      expect(pool.all().map((w) => w.address)).to.deep.equal(['a:1', 'b:1']);
      expect(pool.get('a:1')!.nodeId).to.equal('n1');
      const { removed } = pool.sync('redis', []);
      expect(removed.map((w) => w.address)).to.deep.equal(['b:1']);
      expect(pool.all().map((w) => w.address)).to.deep.equal(['a:1']);
    });

    it('caps connections per address', () => {
      const limiter = new IpConnectionLimit(2);
      expect(limiter.acquire('1.1.1.1')).to.equal(true);
      expect(limiter.acquire('1.1.1.1')).to.equal(true);
      expect(limiter.acquire('1.1.1.1')).to.equal(false);
      expect(limiter.acquire('2.2.2.2')).to.equal(true);
      limiter.release('1.1.1.1');
      expect(limiter.acquire('1.1.1.1')).to.equal(true);
      const unlimited = new IpConnectionLimit(0);
      for (let i = 0; i < 5000; i++) expect(unlimited.acquire('x')).to.equal(true);
    });
  });
});
