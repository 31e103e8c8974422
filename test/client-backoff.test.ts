import { expect } from 'chai';
import { backoff } from '@herald/client';

describe('client backoff (unit)', () => {
  it('stays within [min, min(max, min*2^(attempt+1))] for every attempt', () => {
    const min = 500;
    const max = 20000;
    for (let attempt = 0; attempt < 60; attempt++) {
      const cap = Math.min(max, min * 2 ** (attempt + 1));
      for (const r of [0, 0.25, 0.5, 0.999999, Math.random()]) {
        const d = backoff(attempt, min, max, () => r);
        expect(d, `attempt ${attempt} r ${r}`).to.be.within(min, cap);
        expect(Number.isInteger(d)).to.equal(true);
      }
    }
  });

  it('uses the whole window (full jitter): lowest at random 0, highest near random 1', () => {
    expect(backoff(0, 100, 10000, () => 0)).to.equal(100);
    expect(backoff(0, 100, 10000, () => 0.9999)).to.equal(199);
    expect(backoff(3, 100, 10000, () => 0.9999)).to.equal(1599);
    expect(backoff(30, 100, 10000, () => 0.9999)).to.equal(9999);
  });

  it('spreads delays instead of giving every client the same one', () => {
    const delays = new Set(Array.from({ length: 200 }, () => backoff(4, 100, 10000)));
    expect(delays.size).to.be.greaterThan(50);
  });

  it('never exceeds max, even for huge attempts, and tolerates odd inputs', () => {
    expect(backoff(1e9, 10, 1000, () => 0.99999)).to.be.at.most(1000);
    expect(backoff(-5, 10, 1000, () => 0)).to.equal(10);
    expect(backoff(2, 10, 5, () => 0.5)).to.equal(10); // max below min: min wins
    expect(backoff(2, 0, 0, () => 0.5)).to.equal(0);
    expect(backoff(2, 10, 1000, () => 7)).to.be.at.most(80); // random clamped to [0, 1]
  });
});
