import { expect } from 'chai';
import { MemoryHistory } from '@herald/server';

describe('memory history: expiry', () => {
  it('expires empty and idle streams, so channel names cannot grow memory without bound', async () => {
    let now = 1_000;
    const history = new MemoryHistory({ now: () => now, emptyStreamTtlMs: 100, sweepIntervalMs: 0 });
    const empty = await history.position('a');
    history.append({ kind: 'message', channel: 'b', data: 1, from: null }, { size: 10, ttlMs: 500 });
    expect(await history.position('a')).to.deep.equal(empty);
    now += 101;
    history.sweep();
    // The empty stream is gone: the next reader sees a new epoch; the published one stays.
    expect((await history.position('a')).epoch).to.not.equal(empty.epoch);
    expect((await history.position('b')).offset).to.equal(1);
    now += 500;
    history.sweep();
    expect((await history.position('b')).offset).to.equal(0);
    history.close();
  });
});
