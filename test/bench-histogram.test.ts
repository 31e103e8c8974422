import { expect } from 'chai';
import { Histogram } from '@herald/bench';

describe('bench histogram', () => {
  it('gives percentiles within 1 % and merges', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let v = 1; v <= 10_000; v++) (v % 2 ? a : b).record(v);
    const h = Histogram.from(a.toJSON()).merge(b);
    expect(h.count).to.equal(10_000);
    for (const [q, want] of [[0.5, 5000], [0.99, 9900], [0.999, 9990]] as const) {
      expect(h.percentile(q)).to.be.within(want * 0.99, want * 1.011);
    }
    expect(h.max).to.equal(10_000);
    expect(new Histogram().percentile(0.99)).to.equal(0);
  });
});
