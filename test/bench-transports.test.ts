import { expect } from 'chai';
import { availableParallelism } from 'node:os';
import { parseOptions, runBench } from '@herald/bench';

describe('bench harness: transports (a herald worker process, WebSocket vs SSE vs long-polling)', function () {
  this.timeout(90_000);

  it('measures all three transports: bytes each way, latency, CPU, rate and idle memory, losing nothing', async () => {
    const opts = { ...parseOptions(['transports']), rates: [20, 40], stepMs: 300, p99LimitMs: 60_000, idleConns: 10, cpus: availableParallelism() };
    expect(opts.scenarios).to.deep.equal(['transports']);
    const { rows } = await runBench(opts, { write: false, log: () => undefined });
    expect(rows.map((r) => r.target)).to.deep.equal(['herald websocket', 'herald sse', 'herald long-polling']);
    for (const r of rows) {
      const e = r.extra as Record<string, number>;
      expect(r.lost, r.target).to.equal(0);
      expect(r.value, r.target).to.equal(40); // both steps passed: every message arrived (the p99 limit is out of reach)
      for (const k of ['bytesUpPerMsg', 'bytesDownPerMsg']) expect(e[k], `${r.target} ${k}`).to.be.above(20);
      expect(Number.isFinite(r.p99!), r.target).to.equal(true);
    }
    // A WebSocket frame carries a message with less than an SSE event or a poll answer; only polls cost the receiver upstream bytes.
    const [ws, sse, poll] = rows.map((r) => r.extra as Record<string, number>);
    expect(ws!.bytesDownPerMsg).to.be.below(sse!.bytesDownPerMsg);
    expect(sse!.bytesDownPerMsg).to.be.below(poll!.bytesDownPerMsg);
    expect(poll!.receiverUpPerMsg).to.be.above(ws!.receiverUpPerMsg);
  });
});
