import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';

/** Every knob of a run. Defaults are the full run; `--quick` shrinks durations and sizes. */
export interface BenchOptions {
  /** Scenarios to run. @default ['echo','fanout','conns','proxy'] */
  scenarios: string[];
  quick: boolean;
  /** Load agent processes. @default 2 */
  agents: number;
  /** Measuring window per run, ms. @default 10000 (quick 2000) */
  durationMs: number;
  /** Warm-up before each window, ms. @default 1000 (quick 500) */
  warmupMs: number;
  /** echo: connections. @default 100 */
  conns: number;
  /** echo: messages in flight per connection. @default 4 */
  inflight: number;
  /** echo/fanout: payload bytes. @default 64 */
  size: number;
  /** echo: binary frames instead of text. @default false */
  binary: boolean;
  /** fanout: subscribers. @default 1000 */
  subscribers: number;
  /** fanout: workers (each kind gets the same number). @default 2 */
  workers: number;
  /** fanout: publisher connections. @default 2 */
  publishers: number;
  /** fanout: publish rates tried in order (msg/s) until one fails. @default 25,50,100,200,400,800,1600,3200 (quick 25,100,400,1600) */
  rates: number[];
  /** fanout: length of each rate step, ms. @default 5000 (quick 1000) */
  stepMs: number;
  /** fanout: p99 limit of a passing step, ms. @default 50 */
  p99LimitMs: number;
  /** conns: idle subscribed connections per target. @default 10000 (same with --quick: smaller runs inflate it, see docs/benchmarks.md) */
  idleConns: number;
  /** conns: connections opened per second. @default 4000 */
  rampPerSec: number;
  /** proxy: workers behind each proxy. @default 2 */
  proxyWorkers: number;
  /** proxy: clients speak wss to nginx and herald-balancer (TLS ended there, plain HTTP to the workers) instead of ws. @default false */
  tls: boolean;
  /** scale: idle subscribed connections over all workers. @default 100000 (quick 6000) */
  scaleConns: number;
  /** scale: Herald workers (each holds at most 19,000 connections: 20,000 descriptors per process). @default 6 */
  scaleWorkers: number;
  /** jitter, deploy: reconnecting subscribers of the history channel. @default 50 (quick 20) */
  continuityClients: number;
  /** jitter: each subscriber's connection is cut every this many ms. @default 15000 */
  jitterPeriodMs: number;
  /** jitter: how long each cut lasts, ms. @default 2000 */
  jitterCutMs: number;
  /** Only targets whose name starts with one of these (e.g. `herald`, `ws`, `socket.io`, `nginx`). @default all */
  targets: string[];
  /** Directory for the JSON results. @default bench-results */
  outDir: string;
  /** Also write an SVG of fan-out p99 vs publish rate per target beside the JSON (`--plot`). @default false */
  plot: boolean;
  /** Logical CPUs of the machine (for saturation notes). */
  cpus: number;
}

const USAGE = `herald-bench [--quick] [--scenarios echo,fanout,conns,proxy] [options]
       herald-bench transports [options]    (a scenario name is the same as --scenarios NAME)

  --quick               small sizes and short windows (< 2 minutes)
  --scenarios LIST      comma-separated subset (default: all)
  --agents N            load generator processes (default 2)
  --duration S          measuring window per run in seconds (default 10, quick 2)
  --warmup S            warm-up before each window (default 1, quick 0.5)
  echo:   --conns N (100) --inflight N (4) --size BYTES (64) --binary
  fanout: --subscribers N (1000) --workers N (2) --publishers N (2)
          --rates R1,R2,... (25,50,...,3200; quick 25,100,400,1600) --step S (5, quick 1) --p99-limit MS (50)
  conns:  --idle-conns N (10000) --ramp N per second (4000)
  proxy:  --proxy-workers N (2) --tls (wss to nginx and herald-balancer; TLS ends there)
  scale:  --scale-conns N (100000, quick 6000) --scale-workers N (6); not in the default list
  transports: WebSocket vs SSE vs long-polling on one worker: bytes per message each way, p50/p99 at
          the first of --rates, CPU µs/msg, highest rate within --p99-limit, memory per idle session
          (--idle-conns, at most 500); not in the default list
  jitter: --clients N (50, quick 20) --jitter-period S (15) --jitter-cut S (2) --workers N;
          publish rate: the first of --rates; not in the default list
  deploy: --clients N --workers N; publish rate: the first of --rates; not in the default list
  --targets LIST        only these targets (prefixes: herald, ws, socket.io, direct, nginx, http-proxy, herald-balancer)
  --out DIR             where the JSON goes (default bench-results)
  --plot                also write bench-<time>.svg: fan-out p99 vs publish rate per target
`;

/** Parses the command line (`--help` prints usage and exits). */
export function parseOptions(argv: string[]): BenchOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    // `herald-bench transports` is `herald-bench --scenarios transports`.
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      scenarios: { type: 'string' },
      agents: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      conns: { type: 'string' },
      inflight: { type: 'string' },
      size: { type: 'string' },
      binary: { type: 'boolean' },
      subscribers: { type: 'string' },
      workers: { type: 'string' },
      publishers: { type: 'string' },
      rates: { type: 'string' },
      step: { type: 'string' },
      'p99-limit': { type: 'string' },
      'idle-conns': { type: 'string' },
      ramp: { type: 'string' },
      'proxy-workers': { type: 'string' },
      tls: { type: 'boolean' },
      'scale-conns': { type: 'string' },
      'scale-workers': { type: 'string' },
      targets: { type: 'string' },
      clients: { type: 'string' },
      'jitter-period': { type: 'string' },
      'jitter-cut': { type: 'string' },
      out: { type: 'string' },
      plot: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const num = (name: string, v: string | undefined, fallback: number, min = 0): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got ${v}`);
    return n;
  };
  const scenarios = (values.scenarios ?? (positionals.length > 0 ? positionals.join(',') : 'echo,fanout,conns,proxy')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of scenarios) if (!['echo', 'fanout', 'conns', 'proxy', 'scale', 'transports', 'jitter', 'deploy'].includes(s)) throw new Error(`unknown scenario ${s}`);
  // Quick: fewer, wider steps so every scenario fits in two minutes.
  const rates = (values.rates ?? (quick ? '25,100,400,1600' : '25,50,100,200,400,800,1600,3200')).split(',').map((r) => num('rates', r, 0, 1));
  return {
    scenarios,
    quick,
    agents: Math.floor(num('agents', values.agents, 2, 1)),
    durationMs: num('duration', values.duration, quick ? 2 : 10, 0.1) * 1000,
    warmupMs: num('warmup', values.warmup, quick ? 0.5 : 1) * 1000,
    conns: Math.floor(num('conns', values.conns, 100, 1)),
    inflight: Math.floor(num('inflight', values.inflight, 4, 1)),
    size: Math.floor(num('size', values.size, 64, 1)),
    binary: values.binary ?? false,
    subscribers: Math.floor(num('subscribers', values.subscribers, 1000, 1)),
    workers: Math.floor(num('workers', values.workers, 2, 1)),
    publishers: Math.floor(num('publishers', values.publishers, 2, 1)),
    rates,
    stepMs: num('step', values.step, quick ? 1 : 5, 0.1) * 1000,
    p99LimitMs: num('p99-limit', values['p99-limit'], 50, 1),
    idleConns: Math.floor(num('idle-conns', values['idle-conns'], 10_000, 1)),
    rampPerSec: num('ramp', values.ramp, 4000, 0),
    proxyWorkers: Math.floor(num('proxy-workers', values['proxy-workers'], 2, 1)),
    tls: values.tls ?? false,
    scaleConns: Math.floor(num('scale-conns', values['scale-conns'], quick ? 6000 : 100_000, 1)),
    scaleWorkers: Math.floor(num('scale-workers', values['scale-workers'], 6, 1)),
    continuityClients: Math.floor(num('clients', values.clients, quick ? 20 : 50, 1)),
    jitterPeriodMs: num('jitter-period', values['jitter-period'], 15, 0.1) * 1000,
    jitterCutMs: num('jitter-cut', values['jitter-cut'], 2, 0.01) * 1000,
    targets: (values.targets ?? '').split(',').map((t) => t.trim()).filter(Boolean),
    outDir: values.out ?? 'bench-results',
    plot: values.plot ?? false,
    cpus: availableParallelism(),
  };
}

/**
 * Whether `--quick` leaves out a row that explains a result rather than decides a target (the
 * bare http-proxy hop, the balancer's js data plane, Socket.IO's memory), to stay under two
 * minutes. `--targets` naming it brings it back.
 */
export function quickSkips(opts: BenchOptions): boolean {
  return opts.quick && opts.targets.length === 0;
}

/** Whether target `name` is selected by `--targets`. */
export function selected(opts: BenchOptions, name: string): boolean {
  return opts.targets.length === 0 || opts.targets.some((t) => name.startsWith(t));
}
