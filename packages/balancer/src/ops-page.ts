import http, { type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { BalancerStatus, WorkerStatus } from './status.js';

/** The ops page (HTML). */
export const OPS_PATH = '/balancer/';
/** What the ops page polls: the status plus each worker's figures from its `/metrics`. */
export const OPS_STATS_PATH = '/balancer/stats';

/** Figures read from one worker's `/metrics` (Prometheus text). */
export interface WorkerFigures {
  /** `herald_connections{endpoint="ws"}` + `{endpoint="echo"}`: connections the worker holds. */
  connections: number | null;
  /** `herald_broker_up`: 1 while its Redis (or the embedded broker) is available. */
  brokerUp: boolean | null;
  /** Per second since the previous scrape (`null` on the first): frames from clients, frames to clients, publishes. */
  rates: { framesIn: number; framesOut: number; publishes: number } | null;
  /** Why the scrape failed (`null` when it worked). */
  error: string | null;
}

/** The body of `GET /balancer/stats`. */
export interface OpsStats extends BalancerStatus {
  /** When the figures were scraped, ms since epoch. */
  scrapedAt: number;
  workers: Array<WorkerStatus & { metrics: WorkerFigures }>;
}

/** Options of {@link OpsStatsSource}. */
export interface OpsStatsOptions {
  /** Figures younger than this are served from the cache, however many pages poll. @default 1000 */
  cacheMs?: number;
  /** Per-worker scrape timeout. @default 1000 */
  timeoutMs?: number;
}

interface Sample {
  at: number;
  framesIn: number;
  framesOut: number;
  publishes: number;
}

const COUNTERS = {
  framesIn: 'herald_frames_received_total',
  framesOut: 'herald_frames_sent_total',
  publishes: 'herald_publishes_total',
} as const;

/** Sums every sample of `name` (all label sets) in Prometheus text; `null` when absent. */
function sum(text: string, name: string, labels?: RegExp): number | null {
  let total: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels && !labels.test(line)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total = (total ?? 0) + value;
  }
  return total;
}

function scrape(address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const req = http.get({ host, port, path: '/metrics', timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`/metrics answered ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Scrapes the workers' `/metrics` on demand, at most once per `cacheMs` (callers in between
 * share the last result or the scrape in flight), and turns the counters into per-second rates
 * against the previous scrape. Only workers the balancer knows are scraped, at the address
 * their membership record (or the static list) gives.
 */
export class OpsStatsSource {
  private readonly cacheMs: number;
  private readonly timeoutMs: number;
  private readonly previous = new Map<string, Sample>();
  private last: OpsStats | undefined;
  private inFlight: Promise<OpsStats> | undefined;

  constructor(private readonly status: () => BalancerStatus, options: OpsStatsOptions = {}) {
    this.cacheMs = options.cacheMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 1000;
  }

  /** The current figures (cached for `cacheMs`). Never rejects: a failed scrape is that worker's `error`. */
  get(): Promise<OpsStats> {
    if (this.last && Date.now() - this.last.scrapedAt < this.cacheMs) return Promise.resolve(this.last);
    this.inFlight ??= this.collect().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async collect(): Promise<OpsStats> {
    const status = this.status();
    const workers = await Promise.all(status.workers.map(async (w) => ({ ...w, metrics: await this.figures(w.address) })));
    // Forget workers that are gone, so the map does not grow with every replaced container.
    for (const address of this.previous.keys()) if (!status.workers.some((w) => w.address === address)) this.previous.delete(address);
    this.last = { ...status, scrapedAt: Date.now(), workers };
    return this.last;
  }

  private async figures(address: string): Promise<WorkerFigures> {
    let text: string;
    try {
      text = await scrape(address, this.timeoutMs);
    } catch (error) {
      return { connections: null, brokerUp: null, rates: null, error: (error as Error).message };
    }
    const now: Sample = {
      at: Date.now(),
      framesIn: sum(text, COUNTERS.framesIn) ?? 0,
      framesOut: sum(text, COUNTERS.framesOut) ?? 0,
      publishes: sum(text, COUNTERS.publishes) ?? 0,
    };
    const before = this.previous.get(address);
    this.previous.set(address, now);
    const seconds = before ? (now.at - before.at) / 1000 : 0;
    // A counter that went down means the worker restarted: no rate for this interval.
    const rate = (k: keyof typeof COUNTERS) => (now[k] >= before![k] ? (now[k] - before![k]) / seconds : 0);
    const up = sum(text, 'herald_broker_up');
    return {
      // prom-client prints a labelled gauge only once a label set was used: none yet means 0.
      connections: sum(text, 'herald_connections') ?? 0,
      brokerUp: up === null ? null : up >= 1,
      rates: before && seconds > 0 ? { framesIn: rate('framesIn'), framesOut: rate('framesOut'), publishes: rate('publishes') } : null,
      error: null,
    };
  }
}

let page: Buffer | undefined;

/**
 * Serves `/balancer/` (the page, `web/ops.html` of this package) and `/balancer/stats`.
 * Returns false for any other path.
 */
export function handleOps(path: string, res: ServerResponse, stats: OpsStatsSource): boolean {
  if (path === '/balancer') {
    res.writeHead(301, { location: OPS_PATH });
    res.end();
    return true;
  }
  if (path === OPS_PATH) {
    // dist/ops-page.js and src/ops-page.ts both sit one level below web/.
    page ??= readFileSync(new URL('../web/ops.html', import.meta.url));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page);
    return true;
  }
  if (path === OPS_STATS_PATH) {
    void stats.get().then((body) => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    });
    return true;
  }
  return false;
}
