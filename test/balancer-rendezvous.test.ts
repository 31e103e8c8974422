import { expect } from 'chai';
import { murmur3, pickWorker, rankWorkers, weight } from '@herald/balancer';

const workers = ['10.0.0.1:3000', '10.0.0.2:3000', '10.0.0.3:3000'];
const keys = Array.from({ length: 1000 }, (_, i) => `session-${i}`);

function assign(ids: readonly string[]): Map<string, string> {
  return new Map(keys.map((key) => [key, pickWorker(key, ids)!]));
}

describe('balancer rendezvous hashing (unit)', () => {
  it('murmur3 matches the reference vectors', () => {
    expect(murmur3('', 0)).to.equal(0);
    expect(murmur3('', 1)).to.equal(0x514e28b7);
    expect(murmur3('hello', 0)).to.equal(0x248bfa47);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0)).to.equal(0x2e4ff723);
    // Multi-byte UTF-8 is hashed as bytes, not UTF-16 code units.
    expect(murmur3('é', 0)).to.not.equal(murmur3('\u00e9'.normalize('NFD'), 0));
  });

  it('gives the same key the same worker, whatever the order of the list', () => {
    for (const key of keys.slice(0, 100)) {
      const first = pickWorker(key, workers);
      expect(pickWorker(key, [...workers].reverse())).to.equal(first);
      expect(pickWorker(key, workers)).to.equal(first);
    }
  });

  it('returns undefined without candidates and the only one with one', () => {
    expect(pickWorker('k', [])).to.equal(undefined);
    expect(pickWorker('k', ['a:1'])).to.equal('a:1');
  });

  it('spreads 1,000 keys over 3 workers within ±20 % of even', () => {
    const counts = new Map<string, number>();
    for (const w of assign(workers).values()) counts.set(w, (counts.get(w) ?? 0) + 1);
    expect([...counts.keys()].sort()).to.deep.equal([...workers].sort());
    const even = keys.length / workers.length;
    for (const [w, n] of counts) {
      expect(n, `${w} got ${n}`).to.be.within(even * 0.8, even * 1.2);
    }
  });

  it('spreads sequential short keys evenly too (localhost ports, numeric ids)', () => {
    const local = ['127.0.0.1:40001', '127.0.0.1:40002', '127.0.0.1:40003'];
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const w = pickWorker(String(i), local)!;
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    for (const n of counts.values()) expect(n).to.be.within(267, 400);
  });

  it('stays within ±20 % for many random localhost port triples (ports are random in tests)', () => {
    let seed = 12345;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let round = 0; round < 30; round++) {
      const ports = new Set<number>();
      while (ports.size < 3) ports.add(1024 + Math.floor(random() * 64000));
      const ids = [...ports].map((p) => `127.0.0.1:${p}`);
      const counts = new Map<string, number>();
      for (const key of keys) {
        const w = pickWorker(key, ids)!;
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
      for (const n of counts.values()) expect(n, ids.join(',')).to.be.within(267, 400);
    }
  });

  it('moves only the removed worker’s keys, each to its runner-up', () => {
    const before = assign(workers);
    const removed = workers[1]!;
    const after = assign(workers.filter((w) => w !== removed));
    let moved = 0;
    for (const key of keys) {
      if (before.get(key) === removed) {
        moved += 1;
        expect(after.get(key)).to.equal(rankWorkers(key, workers)[1]);
      } else {
        expect(after.get(key), key).to.equal(before.get(key));
      }
    }
    expect(moved).to.be.greaterThan(0);
  });

  it('takes about a quarter of the keys, and only for itself, when a fourth worker joins', () => {
    const before = assign(workers);
    const added = '10.0.0.4:3000';
    const after = assign([...workers, added]);
    let taken = 0;
    for (const key of keys) {
      if (after.get(key) !== before.get(key)) {
        expect(after.get(key)).to.equal(added);
        taken += 1;
      }
    }
    expect(taken).to.be.within(250 * 0.8, 250 * 1.2);
  });

  it('ranks every worker once, best first, consistent with pickWorker and weight', () => {
    for (const key of keys.slice(0, 50)) {
      const ranking = rankWorkers(key, workers);
      expect([...ranking].sort()).to.deep.equal([...workers].sort());
      expect(ranking[0]).to.equal(pickWorker(key, workers));
      const weights = ranking.map((w) => weight(key, w));
      expect(weights).to.deep.equal([...weights].sort((a, b) => b - a));
    }
  });
});
