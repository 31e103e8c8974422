import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Highest port a node may use: its cluster bus listens on port + 10000, which must stay ≤ 65535. */
const MAX_PORT = 55_535;

/** Options of {@link RedisCluster.start}. */
export interface RedisClusterOptions {
  /** Masters. @default 3 */
  masters?: number;
  /** Replicas per master. @default 1 */
  replicas?: number;
  /**
   * `cluster-node-timeout` (ms): how long a master may be unreachable before its replica takes
   * over. Small so a failover test takes seconds, not the default 15 s. @default 1000
   */
  nodeTimeoutMs?: number;
  /** How long to wait for the cluster to form (or settle after a change). @default 30000 */
  settleMs?: number;
}

/** One node as the cluster sees it (`CLUSTER NODES`). */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** Id of its master (replicas). */
  masterId?: string;
  /** Slot ranges it serves (masters), inclusive. */
  slots: Array<[number, number]>;
  /** Marked failing by the node we asked. */
  failed: boolean;
}

/** A node of the cluster started here. */
interface LocalNode {
  port: number;
  dir: string;
  proc: ChildProcess;
  alive: boolean;
}

/** Can something listen on `port` of 127.0.0.1 right now? */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A port ≤ 55535 that is free, with its bus port (+10000) free too. Picked at random below the
 * ephemeral range's usual start so outgoing connections rarely take it meanwhile.
 */
export async function freeClusterPort(taken: Set<number> = new Set()): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * (MAX_PORT - 20_000));
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10_000))) return port;
  }
  throw new Error('no free port pair (P, P+10000) found for a Redis Cluster node');
}

/** Parses `CLUSTER NODES` output. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
      const f = flags!.split(',');
      return {
        id: id!,
        port: Number(addr!.split('@')[0]!.split(':').pop()),
        role: f.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        // Entries like `[5461->-id]` are migrations in progress, not owned ranges.
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
          const [a, b] = s.split('-').map(Number);
          return [a!, b ?? a!] as [number, number];
        }),
        failed: f.includes('fail') || f.includes('fail?'),
      } satisfies ClusterNodeInfo;
    });
}

/**
 * A real local Redis Cluster (`redis-server --cluster-enabled yes` per node, formed with
 * `redis-cli --cluster create`), for tests and the bench. Keeps nothing on disk but each node's
 * cluster config file in a temp dir, removed by {@link stop}.
 */
export class RedisCluster {
  private constructor(
    private readonly nodes: LocalNode[],
    private readonly settleMs: number,
  ) {}

  /** Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok` and every replica is attached. */
  static async start(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
    const masters = opts.masters ?? 3;
    const replicas = opts.replicas ?? 1;
    const count = masters * (1 + replicas);
    const taken = new Set<number>();
    const nodes: LocalNode[] = [];
    const cluster = new RedisCluster(nodes, opts.settleMs ?? 30_000);
    try {
      for (let i = 0; i < count; i++) {
        const port = await freeClusterPort(taken);
        taken.add(port);
        const dir = mkdtempSync(join(tmpdir(), `herald-rc-${port}-`));
        const proc = spawn(
          'redis-server',
          [
            '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
            '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
            '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1000),
            '--save', '', '--appendonly', 'no', '--loglevel', 'warning',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const node: LocalNode = { port, dir, proc, alive: true };
        proc.once('exit', () => (node.alive = false));
        // Drain its output so a full pipe never blocks it.
        proc.stdout!.resume();
        proc.stderr!.resume();
        nodes.push(node);
      }
      await Promise.all(nodes.map((n) => cluster.until(async () => (await cluster.cli(n.port, 'PING')).trim() === 'PONG', `node ${n.port} answers PING`)));
      await run('redis-cli', [
        '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas', String(replicas), '--cluster-yes',
      ], { timeout: 30_000 });
      await cluster.settled();
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** `host:port` of every live node, e.g. for `HERALD_REDIS_CLUSTER`. */
  get seeds(): string[] {
    return this.nodes.filter((n) => n.alive).map((n) => `127.0.0.1:${n.port}`);
  }

  /** Seed nodes as ioredis `Cluster` takes them. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.filter((n) => n.alive).map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  /** Process ids of the live nodes (for CPU accounting). */
  pids(): number[] {
    return this.nodes.filter((n) => n.alive && n.proc.pid).map((n) => n.proc.pid!);
  }

  /** Runs `redis-cli -p port <args>` and returns its output. */
  async cli(port: number, ...args: string[]): Promise<string> {
    try {
      return (await run('redis-cli', ['-p', String(port), ...args], { timeout: 5000 })).stdout;
    } catch {
      return '';
    }
  }

  /** The cluster's view of its nodes, asked of a live node; failed nodes are left out. */
  async topology(): Promise<ClusterNodeInfo[]> {
    for (const n of this.nodes) {
      if (!n.alive) continue;
      const text = await this.cli(n.port, 'CLUSTER', 'NODES');
      if (text) return parseClusterNodes(text).filter((x) => !x.failed && this.nodes.some((l) => l.port === x.port && l.alive));
    }
    throw new Error('no live Redis Cluster node');
  }

  /** Live masters, sorted by their first slot. */
  async masters(): Promise<ClusterNodeInfo[]> {
    return (await this.topology()).filter((n) => n.role === 'master' && n.slots.length > 0).sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
  }

  /** The live master serving `slot`. */
  async masterOf(slot: number): Promise<ClusterNodeInfo> {
    const m = (await this.masters()).find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!m) throw new Error(`no master serves slot ${slot}`);
    return m;
  }

  /**
   * SIGKILLs a master — the one serving `target.slot`, or the `target.index`-th by first slot —
   * and waits until one of its replicas was promoted and the cluster is `ok` again.
   *
   * @returns the killed master and the promoted replica
   */
  async killMaster(target: { slot: number } | { index: number }): Promise<{ killed: ClusterNodeInfo; promoted: ClusterNodeInfo }> {
    const killed = 'slot' in target ? await this.masterOf(target.slot) : (await this.masters())[target.index];
    if (!killed) throw new Error(`no master #${(target as { index: number }).index}`);
    const replicaIds = (await this.topology()).filter((n) => n.masterId === killed.id).map((n) => n.id);
    if (replicaIds.length === 0) throw new Error(`master ${killed.port} has no replica to promote`);
    const local = this.nodes.find((n) => n.port === killed.port)!;
    local.proc.kill('SIGKILL');
    if (local.alive) await once(local.proc, 'exit');
    let promoted: ClusterNodeInfo | undefined;
    await this.until(async () => {
      promoted = (await this.masters()).find((m) => replicaIds.includes(m.id));
      return promoted !== undefined;
    }, `a replica of ${killed.port} promoted`);
    await this.settled();
    return { killed, promoted: promoted! };
  }

  /**
   * Moves `slots` slots from one master to another (`redis-cli --cluster reshard`,
   * non-interactive), keys included, then waits until every node agrees.
   *
   * @param from - port or node id of the source master
   * @param to - port or node id of the destination master
   */
  async reshard(from: number | string, to: number | string, slots: number): Promise<void> {
    const topo = await this.topology();
    const id = (x: number | string) => (typeof x === 'number' ? topo.find((n) => n.port === x)?.id : x);
    const [f, t] = [id(from), id(to)];
    if (!f || !t) throw new Error(`reshard: unknown node ${f ? to : from}`);
    await run('redis-cli', [
      '--cluster', 'reshard', this.seeds[0]!,
      '--cluster-from', f, '--cluster-to', t, '--cluster-slots', String(slots), '--cluster-yes',
    ], { timeout: 60_000 });
    await this.settled();
  }

  /**
   * Waits until every live node reports `cluster_state:ok`, all 16384 slots are served with
   * no migration left open, and every live replica's link to its master is up.
   */
  async settled(): Promise<void> {
    await this.until(async () => {
      for (const n of this.nodes) {
        if (!n.alive) continue;
        if (!(await this.cli(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      }
      const check = await this.cli(this.nodes.find((n) => n.alive)!.port, '--cluster', 'check', this.seeds[0]!);
      if (!check.includes('All nodes agree about slots configuration') || !check.includes('All 16384 slots covered') || check.includes('[WARNING]')) return false;
      for (const n of this.nodes) {
        if (!n.alive) continue;
        const info = await this.cli(n.port, 'INFO', 'replication');
        if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false;
      }
      return true;
    }, 'the cluster settled (cluster_state:ok everywhere, replicas attached)');
  }

  /** Polls `cond` every 100 ms until true, failing after the settle time with `what`. */
  private async until(cond: () => Promise<boolean>, what: string): Promise<void> {
    const end = Date.now() + this.settleMs;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`Redis Cluster: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills every node and removes their temp dirs. */
  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (n) => {
        if (n.alive) {
          n.proc.kill('SIGKILL');
          await once(n.proc, 'exit').catch(() => undefined);
        }
        rmSync(n.dir, { recursive: true, force: true });
      }),
    );
  }
}
