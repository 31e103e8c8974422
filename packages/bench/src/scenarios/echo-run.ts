import { AgentPool, split } from '../agent-pool.js';
import type { EchoResult } from '../agent/protocol.js';
import { Histogram } from '../histogram.js';
import { measured } from '../measure.js';
import type { Context } from '../context.js';
import type { Row } from '../result.js';

/**
 * Runs the closed-loop echo load against `urlOf(i)` (the URL of connection i), spread over
 * the agents, and returns a table row. `roles` name the processes whose CPU is reported; `ca`
 * is the certificate the agents trust for `wss://` URLs.
 */
export async function runEchoLoad(
  ctx: Context,
  pool: AgentPool,
  scenario: string,
  target: string,
  urlOf: (i: number) => string,
  roles: Record<string, () => number[]>,
  ca?: string,
): Promise<Row> {
  const { opts } = ctx;
  const shares = split(opts.conns, pool.count);
  let first = 0;
  const urls = shares.map((n) => {
    const list = Array.from({ length: n }, (_, k) => urlOf(first + k));
    first += n;
    return list;
  });
  ctx.progress(`${scenario}: ${target}: ${opts.conns} conns × ${opts.inflight} in flight, ${opts.size} B ${opts.binary ? 'binary' : 'text'}, ${opts.durationMs / 1000} s`);
  const m = await measured({ ...roles, loadgen: () => pool.pids() }, () =>
    pool.all<EchoResult>((i) =>
      shares[i]! > 0
        ? { cmd: 'echo', urls: urls[i]!, conns: shares[i]!, inflight: opts.inflight, size: opts.size, binary: opts.binary, warmupMs: opts.warmupMs, durationMs: opts.durationMs, ...(ca ? { ca } : {}) }
        : undefined,
    ),
  );
  const results = m.result.filter((r): r is EchoResult => r !== undefined);
  const hist = new Histogram();
  let windowReceived = 0;
  let windowMs = 0;
  let lost = 0;
  let sent = 0;
  let errors = 0;
  for (const r of results) {
    hist.merge(r.hist);
    windowReceived += r.windowReceived;
    windowMs = Math.max(windowMs, r.windowMs);
    lost += r.lost;
    sent += r.sent;
    errors += r.errors;
  }
  const rate = windowMs > 0 ? (windowReceived * 1000) / windowMs : 0;
  const row: Row = {
    scenario,
    target,
    value: rate,
    unit: 'msg/s',
    p50: hist.percentile(0.5) / 1000,
    p99: hist.percentile(0.99) / 1000,
    p999: hist.percentile(0.999) / 1000,
    lost,
    cpu: m.cpu,
    cpuPerProcess: m.perProcess,
    wall: m.wall,
    loadgenSaturated: m.loadgenSaturated,
    busyCores: m.busyCores,
    extra: { sent, errors, conns: opts.conns, inflight: opts.inflight, size: opts.size, binary: opts.binary, loadgenPeakCore: m.loadgenPeak },
  };
  // CPU per echo over the whole run (connect and drain included) — robust against other load.
  const received = results.reduce((s, r) => s + r.received, 0);
  const perMsg = Object.fromEntries(Object.entries(m.cpu).map(([k, v]) => [k, received > 0 ? (v * 1e6) / received : NaN]));
  row.extra!.cpuMicrosPerMessage = perMsg;
  row.cost = (perMsg.server ?? 0) + (perMsg.proxy ?? 0);
  ctx.progress(
    `${scenario}: ${target}: ${Math.round(rate).toLocaleString('en-US')} msg/s, p99 ${row.p99!.toFixed(2)} ms, lost ${lost}, ` +
      `CPU µs/msg ${Object.entries(perMsg).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(' ')}`,
  );
  return row;
}
