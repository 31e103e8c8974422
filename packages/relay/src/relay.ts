import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import nodeGypBuild from 'node-gyp-build';

/**
 * Why a relayed tunnel ended: that side reached end-of-stream or failed (`client`, `worker`),
 * `close()` was called (`closed`), or no byte moved for `idleMs` (`idle`, errno ETIMEDOUT).
 */
export type RelayEnd = 'client' | 'worker' | 'closed' | 'idle';

/** Called once per relayed tunnel when both its sockets are closed. `errno` is 0 for a clean end. */
export type RelayClosed = (end: RelayEnd, errno: number) => void;

/** The data plane of open tunnels: moves bytes between the two sockets until one side ends. */
export interface Relay {
  /**
   * Takes over an established tunnel. The relay duplicates both descriptors; the caller then
   * destroys its own sockets (which must have nothing left to write).
   *
   * @param client - the client socket
   * @param worker - the worker socket
   * @param toClient - bytes already read from the worker, written to the client first
   * @param toWorker - bytes already read from the client, written to the worker first
   * @param onClosed - called once, when the tunnel is gone
   * @returns the tunnel's id for {@link Relay.close}
   * @throws when the descriptors cannot be taken (too many open files, …); nothing changed then
   */
  add(client: Socket, worker: Socket, toClient: Buffer | undefined, toWorker: Buffer | undefined, onClosed: RelayClosed): number;
  /** Closes a tunnel now (both sockets); its `onClosed` follows. Unknown ids are ignored. */
  close(id: number): void;
}

/** The C addon (native/relay.c). */
interface Binding {
  start(onClosed: (id: number, reason: number, errno: number) => void, lingerMs: number, idleMs: number): void;
  add(clientFd: number, workerFd: number, toClient: Buffer | undefined, toWorker: Buffer | undefined): number;
  close(id: number): void;
}

const ENDS: readonly RelayEnd[] = ['client', 'worker', 'closed', 'idle'];

/**
 * After one side of a relayed tunnel ends, how long the other may still send before both are
 * closed: its end is passed on as a FIN behind the bytes already relayed, and its own answer (a
 * WebSocket close frame, say) still goes through meanwhile. Same as the balancer's pipes' grace.
 */
export const HALF_CLOSE_LINGER_MS = 1000;

/** Options of {@link nativeRelay}. */
export interface NativeRelayOptions {
  /** Half-close grace, ms (see {@link HALF_CLOSE_LINGER_MS}). @default 1000 */
  lingerMs?: number;
  /**
   * Closes a tunnel through which no byte moved, either way, for this long (like nginx's
   * `proxy_read_timeout`; keep it above the worker's heartbeat, whose pings count as traffic).
   * Checked every idle/4, so a tunnel may live up to a quarter longer. 0 = never. @default 0
   */
  idleMs?: number;
}

let loaded: { relay: Relay } | { error: string } | undefined;

/** The package root, where node-gyp-build looks for `prebuilds/<platform>-<arch>/` and `build/Release/`. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The native relay of this process, started on first use, or why it is unavailable (not built:
 * no compiler when installing, not Linux, …). Options count on the first call only: the relay
 * thread is one per process.
 *
 * @param options - relay options
 * @returns the relay, or the reason it is unavailable
 */
export function nativeRelay(options: NativeRelayOptions = {}): { relay: Relay } | { error: string } {
  loaded ??= load(options.lingerMs ?? HALF_CLOSE_LINGER_MS, options.idleMs ?? 0);
  return loaded;
}

function load(lingerMs: number, idleMs: number): { relay: Relay } | { error: string } {
  if (process.platform !== 'linux') return { error: `${process.platform} is not supported, Linux only` };
  let binding: Binding;
  try {
    // The ecosystem's lookup (as bufferutil does): a prebuilt binary for this platform/ABI, else the local build.
    binding = nodeGypBuild(ROOT) as Binding;
  } catch (error) {
    return { error: (error as Error).message.split('\n', 1)[0]! };
  }
  const callbacks = new Map<number, RelayClosed>();
  try {
    binding.start((id, reason, errno) => {
      const onClosed = callbacks.get(id);
      callbacks.delete(id);
      try {
        onClosed?.(ENDS[reason] ?? 'closed', errno);
      } catch (error) {
        // N-API would only warn about it; a bug here must surface like any other uncaught error.
        queueMicrotask(() => {
          throw error;
        });
      }
    }, lingerMs, idleMs);
  } catch (error) {
    // No thread, epoll or eventfd for it (descriptor or process limits): the pipes take over.
    return { error: `the relay thread did not start: ${(error as Error).message}` };
  }
  return {
    relay: {
      add(client, worker, toClient, toWorker, onClosed) {
        const id = binding.add(socketFd(client), socketFd(worker), toClient, toWorker);
        callbacks.set(id, onClosed);
        return id;
      },
      close: (id) => binding.close(id),
    },
  };
}

/**
 * The descriptor of a connected TCP socket (`-1` when it has none: destroyed, not a TCP handle).
 *
 * The one private Node field this package reads: `net.Socket` has no public API for its file
 * descriptor (only `new net.Socket({ fd })` goes the other way). `_handle.fd` is libuv's stream
 * fd, checked against Node 20.19 and 22; `test/balancer-relay.test.ts` fails if it disappears.
 *
 * @param socket - a connected TCP socket
 * @returns its descriptor, or -1
 */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}
