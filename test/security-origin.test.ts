import { expect } from 'chai';
import { OriginPolicy, normalizeOrigin, type HeraldWorker } from '@herald/server';
import { TestClient, startInProcess, RawSocket, upgradeRequest } from './helpers/index.js';

describe('security: origin allowlist', () => {
  it('normalises origins and compares them whole', () => {
    expect(normalizeOrigin('HTTPS://App.Example.com:443')).to.equal('https://app.example.com');
    expect(normalizeOrigin('http://localhost:3000')).to.equal('http://localhost:3000');
    expect(normalizeOrigin('null')).to.equal(undefined);
    expect(normalizeOrigin('file:///etc/passwd')).to.equal(undefined);
    expect(normalizeOrigin('https://app.example.com/path')).to.equal(undefined);
    const p = new OriginPolicy(['https://app.example.com', 'http://localhost:3000']);
    for (const ok of ['https://app.example.com', 'https://APP.example.com', 'https://app.example.com:443', 'http://localhost:3000']) expect(p.allows(ok), ok).to.equal(true);
    for (const bad of [
      'https://app.example.com.evil.com',
      'https://evil-app.example.com',
      'https://evilapp.example.com',
      'http://app.example.com',
      'https://app.example.com:8443',
      'https://app.example.co',
      'https://app.example.com@evil.com',
      'http://localhost:30000',
      'null',
      '',
      'https://app.example.com\r\nX: y',
    ]) expect(p.allows(bad), bad).to.equal(false);
    expect(p.allows(undefined)).to.equal(true);
    expect(new OriginPolicy().allows('https://anything.example')).to.equal(true);
    expect(() => new OriginPolicy(['app.example.com'])).to.throw(/not an origin/);
  });

  describe('on upgrades (in-process worker)', () => {
    let worker: HeraldWorker;
    let base: string;
    let port: number;
    const clients: TestClient[] = [];
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await worker.close();
    });
    const status = (url: string, origin?: string) =>
      TestClient.connect(url, origin ? { origin } : {}).then((c) => (clients.push(c), 101), (e) => e.status as number);

    it('answers 403 before the upgrade for origins not on the list, on /ws and /echo', async () => {
      ({ worker, ws: base, port } = await startInProcess({ allowedOrigins: ['https://app.example.com'] }));
      expect(await status(`${base}/ws`, 'https://app.example.com')).to.equal(101);
      expect(await status(`${base}/ws`, 'https://app.example.com.evil.com')).to.equal(403);
      expect(await status(`${base}/echo`, 'https://evil.com')).to.equal(403);
      expect(await status(`${base}/ws`, 'null')).to.equal(403);
      // Non-browser clients send no Origin; they are stopped by tokens, not by this list.
      expect(await status(`${base}/ws`)).to.equal(101);
      // The refusal is a plain HTTP response: no 101, no WebSocket frames.
      const raw = await RawSocket.open(port);
      raw.write(upgradeRequest('/ws', ['Origin: https://evil.com']));
      expect((await raw.waitHead()).split('\r\n')[0]).to.equal('HTTP/1.1 403 Forbidden');
      raw.destroy();
    });

    it('allows every origin when no list is configured', async () => {
      ({ worker, ws: base } = await startInProcess());
      expect(await status(`${base}/ws`, 'https://anything.example')).to.equal(101);
    });
  });
});
