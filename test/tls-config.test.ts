import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, isRedisAuthRefusal, loadTlsCredentials, redactRedisUrl, redisTlsOptions, tlsFiles } from '@herald/shared';
import { loadConfig as loadWorkerConfig } from '@herald/server';
import { loadConfig as loadBalancerConfig } from '@herald/balancer';
import { createTestCa, type TestCa } from './helpers/tls.js';

// The shared TLS and Redis-credential rules, in process (the bins' use of them is covered by
// tls-worker, tls-balancer, redis-tls and redis-credentials).
describe('TLS and Redis credential config (@herald/shared, both bins)', () => {
  let dir: string;
  let testCa: TestCa;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-tls-config-'));
    testCa = createTestCa();
    writeFileSync(join(dir, 'ca.pem'), testCa.ca);
    writeFileSync(join(dir, 'junk.pem'), 'not PEM');
    writeFileSync(join(dir, 'empty.pem'), '');
    writeFileSync(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    testCa?.remove();
  });

  it('HERALD_TLS_CERT and HERALD_TLS_KEY: both or neither, in both bins alike', () => {
    expect(tlsFiles(undefined, undefined)).to.equal(undefined);
    expect(tlsFiles('c.pem', 'k.pem')).to.deep.equal({ certFile: 'c.pem', keyFile: 'k.pem' });
    expect(() => tlsFiles('c.pem', undefined)).to.throw(ConfigError, /HERALD_TLS_CERT is set, the other is not/);
    expect(() => tlsFiles(undefined, 'k.pem')).to.throw(ConfigError, /HERALD_TLS_KEY is set, the other is not/);
    expect(loadWorkerConfig({ HERALD_TLS_CERT: 'c.pem', HERALD_TLS_KEY: 'k.pem' }).tls).to.deep.equal({ certFile: 'c.pem', keyFile: 'k.pem' });
    // Empty counts as unset (compose files pass `VAR=`).
    expect(loadWorkerConfig({ HERALD_TLS_CERT: '', HERALD_TLS_KEY: '' }).tls).to.equal(undefined);
    expect(() => loadWorkerConfig({ HERALD_TLS_KEY: 'k.pem' })).to.throw(ConfigError, /go together/);
    const balancer = { HERALD_WORKERS: '127.0.0.1:1' };
    expect(loadBalancerConfig({ ...balancer, HERALD_TLS_CERT: 'c.pem', HERALD_TLS_KEY: 'k.pem' }).tls).to.deep.equal({ certFile: 'c.pem', keyFile: 'k.pem' });
    expect(loadBalancerConfig(balancer).tls).to.equal(undefined);
    expect(() => loadBalancerConfig({ ...balancer, HERALD_TLS_CERT: 'c.pem' })).to.throw(ConfigError, /HERALD_TLS_CERT: .*go together/);
    expect(() => loadBalancerConfig({ ...balancer, HERALD_TLS_CERT: 'c.pem', HERALD_TLS_KEY: 'k.pem', HERALD_RELAY: 'native' })).to.throw(ConfigError, /HERALD_RELAY: native cannot carry TLS/);
  });

  it('loadTlsCredentials names the file that cannot be read or is not a certificate and key', () => {
    expect(() => loadTlsCredentials({ certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'junk.pem') })).to.throw(ConfigError, /^HERALD_TLS_CERT .*missing\.pem: ENOENT/);
    expect(() => loadTlsCredentials({ certFile: join(dir, 'junk.pem'), keyFile: join(dir, 'missing.pem') })).to.throw(ConfigError, /^HERALD_TLS_KEY .*missing\.pem: ENOENT/);
    expect(() => loadTlsCredentials({ certFile: join(dir, 'junk.pem'), keyFile: join(dir, 'junk.pem') })).to.throw(ConfigError, /^HERALD_TLS_CERT .*junk\.pem \/ HERALD_TLS_KEY .*junk\.pem: /);
  });

  it('loadTlsCredentials says in words what is wrong with a pair that does not load, OpenSSL\'s text after it', () => {
    const a = testCa.issue('a.test');
    const b = testCa.issue('b.test');
    const encrypted = join(dir, 'encrypted.pem');
    writeFileSync(encrypted, generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey);
    const load = (certFile: string, keyFile: string) => () => loadTlsCredentials({ certFile, keyFile });
    expect(load(a.certFile, b.keyFile)).to.throw(ConfigError, /: the key is not the private key of this certificate \(error:.*key values mismatch\)$/);
    expect(load(join(dir, 'junk.pem'), a.keyFile)).to.throw(ConfigError, /: the certificate file holds no PEM certificate .*\(error:.*no start line\)$/);
    expect(load(a.keyFile, a.keyFile), 'a key where the certificate goes').to.throw(ConfigError, /the certificate file holds no PEM certificate/);
    expect(load(a.certFile, join(dir, 'junk.pem'))).to.throw(ConfigError, /: the key file holds no private key OpenSSL can read/);
    expect(load(a.certFile, a.certFile), 'a certificate where the key goes').to.throw(ConfigError, /the key file holds no private key/);
    expect(load(a.certFile, encrypted)).to.throw(ConfigError, /the key is encrypted with a passphrase.*openssl pkey/);
  });

  it('HERALD_REDIS_CA: read for rediss://, refused with redis:// or without REDIS_URL', () => {
    const ca = join(dir, 'ca.pem');
    expect(redisTlsOptions('rediss://h:6380', undefined)).to.deep.equal({});
    expect(redisTlsOptions('rediss://h:6380', ca).tls?.ca.toString()).to.equal(testCa.ca);
    // A file that holds no certificate (a key, an empty file) or a certificate that does not parse is refused at start-up.
    expect(() => redisTlsOptions('rediss://h:6380', join(dir, 'junk.pem'))).to.throw(ConfigError, /junk\.pem: holds no PEM certificate/);
    expect(() => redisTlsOptions('rediss://h:6380', join(dir, 'empty.pem'))).to.throw(ConfigError, /empty\.pem: holds no PEM certificate/);
    expect(() => redisTlsOptions('rediss://h:6380', join(dir, 'broken.pem'))).to.throw(ConfigError, /broken\.pem: certificate 1 does not parse/);
    expect(() => redisTlsOptions('redis://h:6379', ca)).to.throw(ConfigError, /needs a rediss:\/\/ REDIS_URL/);
    expect(() => redisTlsOptions(undefined, ca)).to.throw(ConfigError, /needs a rediss:\/\/ REDIS_URL/);
    expect(() => redisTlsOptions('rediss://h:6380', join(dir, 'nope.pem'))).to.throw(ConfigError, /^HERALD_REDIS_CA .*nope\.pem: ENOENT/);
    expect(loadWorkerConfig({ REDIS_URL: 'rediss://h:6380', HERALD_REDIS_CA: ca }).redisTls.tls?.ca).to.be.instanceOf(Buffer);
    expect(() => loadBalancerConfig({ REDIS_URL: 'redis://h:6379', HERALD_REDIS_CA: ca })).to.throw(ConfigError, /HERALD_REDIS_CA: .*needs a rediss/);
  });

  it('tells refused credentials from other Redis errors, and redacts only the password', () => {
    for (const m of ['WRONGPASS invalid username-password pair or user is disabled.', 'NOAUTH Authentication required.', "NOPERM this user has no permissions to run the 'info' command"]) {
      expect(isRedisAuthRefusal(new Error(m)), m).to.equal(true);
    }
    for (const m of ['connect ECONNREFUSED 127.0.0.1:6379', 'Connection is closed.', 'self-signed certificate in certificate chain', 'ERR unknown command', 'xNOAUTH']) {
      expect(isRedisAuthRefusal(new Error(m)), m).to.equal(false);
    }
    expect(isRedisAuthRefusal(undefined)).to.equal(false);
    expect(redactRedisUrl('redis://herald:s3cret@10.0.0.2:6379/2')).to.equal('redis://herald:***@10.0.0.2:6379/2');
    expect(redactRedisUrl('rediss://:s3cret@h:6380')).to.equal('rediss://:***@h:6380');
    expect(redactRedisUrl('redis://h:6379')).to.equal('redis://h:6379');
  });
});
