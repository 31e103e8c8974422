import { AgentPool } from '../agent-pool.js';
import type { Context } from '../context.js';
import { quickSkips, selected } from '../options.js';
import { ratio, type Row } from '../result.js';
import type { Deployment } from '../servers/deployment.js';
import { startBalancer, startHerald, startHttpProxy, startNginx } from '../servers/launch.js';
import { SkipError, startOrSkip } from '../skip-error.js';
import { makeBenchCert, type BenchCert } from '../servers/bench-cert.js';
import { runEchoLoad } from './echo-run.js';

/** Target of issue 7: echo through herald-balancer ≥ 0.9× the same through nginx. */
export const PROXY_GOAL = 0.9;
/** Rows that explain the result rather than decide it (see {@link quickSkips}). */
const EXPLANATORY = ['http-proxy (bare)', 'herald-balancer (js)'];

/**
 * `proxy`: the echo load against the same Herald workers directly, through nginx (generated
 * config, own prefix), through a bare `http-proxy` server (the floor of a Node proxy hop),
 * through herald-balancer (its native relay moving the bytes of open tunnels) and through
 * herald-balancer with `HERALD_RELAY=js` (Node's stream pipes instead). Every connection carries `?sid=<i>` so both
 * proxies spread connections over the workers by their sticky hash.
 */
export async function proxyScenario(ctx: Context): Promise<Row[]> {
  if (ctx.opts.tls) return proxyTlsScenario(ctx);
  const { opts } = ctx;
  const workers = await startHerald(opts.proxyWorkers);
  const pool = new AgentPool(opts.agents);
  const rows: Row[] = [];
  try {
    if (selected(opts, 'direct')) rows.push(
      await runEchoLoad(ctx, pool, 'proxy', 'direct', (i) => `${workers.wsBases[i % workers.ports.length]}/echo?sid=${i}`, {
        server: () => workers.pids(),
      }),
    );
    const proxies: Array<[string, () => Promise<Deployment>]> = [
      ['nginx', () => startNginx(workers)],
      ['http-proxy (bare)', () => startHttpProxy(workers)],
      ['herald-balancer', () => startBalancer(workers)],
      ['herald-balancer (js)', () => startBalancer(workers, 'js')],
    ];
    for (const [name, start] of proxies) {
      if (!selected(opts, name)) continue;
      if (EXPLANATORY.includes(name) && quickSkips(opts)) continue;
      const proxy = await startOrSkip(ctx, 'proxy', name, rows, start);
      if (!proxy) continue;
      try {
        const base = proxy.wsBases[0]!;
        rows.push(await runEchoLoad(ctx, pool, 'proxy', name, (i) => `${base}/echo?sid=${i}`, { server: () => workers.pids(), proxy: () => proxy.pids() }));
      } finally {
        await proxy.stop();
      }
    }
  } finally {
    await pool.close();
    await workers.stop();
  }
  const direct = rows.find((r) => r.target === 'direct');
  const nginx = rows.find((r) => r.target === 'nginx' && !r.skipped);
  const balancer = rows.find((r) => r.target === 'herald-balancer' && !r.skipped);
  const bare = rows.find((r) => r.target === 'http-proxy (bare)' && !r.skipped);
  const jsRelay = rows.find((r) => r.target === 'herald-balancer (js)' && !r.skipped);
  if (bare && nginx) bare.ratio = ratio(bare.value, nginx.value, 'nginx');
  if (jsRelay && nginx) jsRelay.ratio = ratio(jsRelay.value, nginx.value, 'nginx');
  if (nginx && direct) nginx.ratio = ratio(nginx.value, direct.value, 'direct');
  if (balancer && nginx) balancer.ratio = ratio(balancer.value, nginx.value, 'nginx', PROXY_GOAL);
  return rows;
}

/** Rows of `proxy --tls`: TLS ends at the proxy, which talks plain HTTP to the workers. */
const TLS_TARGETS = ['nginx (tls)', 'herald-balancer (tls)'];

/**
 * `proxy --tls`: the same echo load over `wss://` through nginx and through herald-balancer,
 * both ending TLS with one throw-away EC P-256 certificate and talking plain HTTP to the same
 * workers; plus `direct` (plain ws to the workers) as the floor. The balancer's TLS tunnels run
 * on its JS data plane (the native relay cannot carry TLS), so this row shows the price of TLS in
 * Node next to nginx's OpenSSL in C. No goal is set for it: it is for the deploy docs' choice of
 * where to end TLS (docs/deploy.md "TLS").
 */
async function proxyTlsScenario(ctx: Context): Promise<Row[]> {
  const { opts } = ctx;
  let cert: BenchCert;
  const rows: Row[] = [];
  try {
    cert = makeBenchCert();
  } catch (err) {
    if (!(err instanceof SkipError)) throw err;
    for (const name of TLS_TARGETS) await startOrSkip(ctx, 'proxy', name, rows, () => Promise.reject(err));
    return rows;
  }
  const workers = await startHerald(opts.proxyWorkers);
  const pool = new AgentPool(opts.agents);
  try {
    if (selected(opts, 'direct')) rows.push(
      await runEchoLoad(ctx, pool, 'proxy', 'direct', (i) => `${workers.wsBases[i % workers.ports.length]}/echo?sid=${i}`, { server: () => workers.pids() }),
    );
    const proxies: Array<[string, () => Promise<Deployment>]> = [
      ['nginx (tls)', () => startNginx(workers, cert)],
      ['herald-balancer (tls)', () => startBalancer(workers, 'js', cert)],
    ];
    for (const [name, start] of proxies) {
      if (!selected(opts, name)) continue;
      const proxy = await startOrSkip(ctx, 'proxy', name, rows, start);
      if (!proxy) continue;
      try {
        const base = proxy.wsBases[0]!;
        rows.push(await runEchoLoad(ctx, pool, 'proxy', name, (i) => `${base}/echo?sid=${i}`, { server: () => workers.pids(), proxy: () => proxy.pids() }, cert.ca));
      } finally {
        await proxy.stop();
      }
    }
  } finally {
    await pool.close();
    await workers.stop();
    cert.remove();
  }
  const direct = rows.find((r) => r.target === 'direct');
  const nginx = rows.find((r) => r.target === 'nginx (tls)' && !r.skipped);
  const balancer = rows.find((r) => r.target === 'herald-balancer (tls)' && !r.skipped);
  if (nginx && direct) nginx.ratio = ratio(nginx.value, direct.value, 'direct');
  if (balancer && nginx) balancer.ratio = ratio(balancer.value, nginx.value, 'nginx (tls)');
  return rows;
}
