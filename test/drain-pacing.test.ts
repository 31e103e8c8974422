import { expect } from 'chai';
import fc from 'fast-check';
import { closeInBatches } from '@herald/server';

/**
 * Runs closeInBatches over `n` recording targets and returns the size of each batch. A batch is
 * the closes made in one synchronous run: closeInBatches awaits a timer between two batches, so
 * a microtask queued at a batch's first close runs only after that batch's last one.
 */
async function batchSizes(n: number, spreadMs: number, intervalMs: number): Promise<{ sizes: number[]; closed: Array<[number, string]>; elapsed: number }> {
  const sizes: number[] = [];
  const closed: Array<[number, string]> = [];
  let open = false;
  const targets = Array.from({ length: n }, () => ({
    close(code: number, reason: string) {
      closed.push([code, reason]);
      if (!open) {
        open = true;
        sizes.push(0);
        queueMicrotask(() => (open = false));
      }
      sizes[sizes.length - 1]! += 1;
    },
  }));
  const started = Date.now();
  await closeInBatches(targets, { code: 1001, reason: 'going away', spreadMs, intervalMs });
  return { sizes, closed, elapsed: Date.now() - started };
}

describe('drain pacing (closeInBatches)', () => {
  it('spreads 21 connections over the 20 batches of a 1 s spread: nineteen of 1, one of 2 (not eleven of 2)', async () => {
    const { sizes } = await batchSizes(21, 100, 5);
    expect(sizes).to.have.length(20);
    expect(sizes.filter((s) => s === 2)).to.have.length(1);
    expect(sizes.filter((s) => s === 1)).to.have.length(19);
  });

  it('closes fewer connections than batches one per interval', async () => {
    const { sizes, elapsed } = await batchSizes(10, 100, 5);
    expect(sizes).to.deep.equal(Array(10).fill(1));
    // Nine pauses between ten batches (timers never fire early).
    expect(elapsed).to.be.at.least(9 * 5 - 1);
  });

  it('any count and spread: every target closed once with the code, min(n, spread / interval) batches, sizes within one of each other, none above ceil(n / batches)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 40 }), async (n, slots) => {
        const { sizes, closed } = await batchSizes(n, slots, 1);
        expect(closed).to.have.length(n);
        expect(closed.every(([code, reason]) => code === 1001 && reason === 'going away')).to.equal(true);
        if (n === 0) {
          expect(sizes).to.deep.equal([]);
          return;
        }
        const batches = Math.min(n, Math.max(1, slots));
        expect(sizes).to.have.length(batches);
        expect(Math.max(...sizes) - Math.min(...sizes)).to.be.at.most(1);
        expect(Math.max(...sizes)).to.equal(Math.ceil(n / batches));
      }),
      { numRuns: 60 },
    );
  });
});
