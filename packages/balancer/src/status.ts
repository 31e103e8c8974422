import type { Worker, WorkerSource, WorkerState } from './worker-pool.js';

/** One worker in `GET /balancer/status`. */
export interface WorkerStatus {
  /** `host:port`. */
  address: string;
  /** Node id from its membership record (`null` for static workers). */
  node: string | null;
  state: WorkerState;
  /** Whether it receives new connections (`state === 'healthy'`). */
  healthy: boolean;
  /** WebSocket tunnels open or opening to it. */
  connections: number;
  /** Plain HTTP requests in flight to it. */
  requests: number;
  /** Where it was found. */
  sources: WorkerSource[];
  /** Last active check, ms since epoch (0 = never). */
  lastCheck: number;
  /** Why it last failed (`null` while healthy). */
  lastError: string | null;
}

/** The body of `GET /balancer/status`. */
export interface BalancerStatus {
  /** `ok`, or `draining` after SIGTERM. */
  status: 'ok' | 'draining';
  /** This instance's id (`HERALD_BALANCER_ID`), as sent to workers in `X-Herald-Balancer`. */
  id: string;
  pid: number;
  uptimeMs: number;
  /** The `HERALD_STICKY` setting. */
  sticky: string;
  /** Active discovery sources. */
  discovery: Array<'static' | 'redis'>;
  /** Number of healthy workers. */
  healthy: number;
  /** Data plane of open tunnels: the native relay thread or Node's stream pipes (`HERALD_RELAY`; always `js` with TLS). */
  relay: 'native' | 'js';
  /**
   * TLS towards clients (`HERALD_TLS_CERT`): TLS tunnels always run on the JS data plane, since the
   * native relay moves raw bytes and TLS records are decrypted in Node. `certLoadedAt` (ms since
   * epoch) and `reloads` change with each SIGHUP reload that succeeded.
   */
  tls: { enabled: false } | { enabled: true; dataPlane: 'js'; certLoadedAt: number; reloads: number };
  connections: {
    /** Client TCP connections held by Node (HTTP keep-alive, tunnels before the hand-over, all tunnels with `relay: 'js'`). */
    clients: number;
    /** Open or opening WebSocket tunnels. */
    tunnels: number;
    /** Plain HTTP requests in flight. */
    requests: number;
  };
  workers: WorkerStatus[];
}

/**
 * @param worker - a worker of the pool
 * @returns its status entry
 */
export function workerStatus(worker: Worker): WorkerStatus {
  return {
    address: worker.address,
    node: worker.nodeId ?? null,
    state: worker.state,
    healthy: worker.state === 'healthy',
    connections: worker.connections,
    requests: worker.requests,
    sources: [...worker.sources].sort(),
    lastCheck: worker.lastCheck,
    lastError: worker.lastError,
  };
}
