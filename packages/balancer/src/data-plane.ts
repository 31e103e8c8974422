import type { Socket } from 'node:net';
import { ConfigError, type Logger } from '@herald/shared';
import type { BalancerConfig } from './config.js';

/**
 * After one side of a piped tunnel ends, how long the other may still send before both are
 * closed (the native relay uses the same grace).
 */
export const HALF_CLOSE_LINGER_MS = 1000;

/** Why a relayed tunnel ended: that side ended or failed, `close()` was called, or it was idle for `HERALD_TUNNEL_IDLE_MS`. */
export type RelayEnd = 'client' | 'worker' | 'closed' | 'idle';

/** Called once per relayed tunnel when both its sockets are closed. `errno` is 0 for a clean end. */
export type RelayClosed = (end: RelayEnd, errno: number) => void;

/**
 * The data plane of open tunnels: moves bytes between the two sockets until one side ends.
 * `@herald/relay` (optional dependency) implements it natively; without it the tunnels stay on
 * http-proxy's stream pipes.
 */
export interface Relay {
  /**
   * Takes over an established tunnel. The relay duplicates both descriptors; the caller then
   * destroys its own sockets (which must have nothing left to write).
   *
   * @returns the tunnel's id for {@link Relay.close}
   * @throws when the descriptors cannot be taken (too many open files, …); nothing changed then
   */
  add(client: Socket, worker: Socket, toClient: Buffer | undefined, toWorker: Buffer | undefined, onClosed: RelayClosed): number;
  /** Closes a tunnel now (both sockets); its `onClosed` follows. Unknown ids are ignored. */
  close(id: number): void;
}

/**
 * The data plane for `HERALD_RELAY`, logged once so an operator sees which one runs: `js` the
 * pipes, `native` the relay or a ConfigError, `auto` the relay when `@herald/relay` is installed
 * and built, else the pipes with one warning line. With TLS (`HERALD_TLS_CERT`) always the pipes.
 *
 * @param config - `HERALD_RELAY`, `HERALD_TUNNEL_IDLE_MS` and whether TLS is on
 * @param logger - the process logger
 * @returns the relay, or undefined for the pipes
 * @throws ConfigError for `native` without the relay
 */
export async function loadRelay(config: Pick<BalancerConfig, 'relay' | 'tunnelIdleMs' | 'tls'>, logger: Logger): Promise<Relay | undefined> {
  const choice = config.relay;
  if (config.tls) {
    // The relay copies bytes between raw descriptors; TLS records are encrypted and decrypted
    // by Node's TLS socket, so a TLS tunnel cannot leave Node (loadConfig refuses `native`).
    logger.info({ relay: 'js', tls: true }, 'TLS tunnels stay on stream pipes (the native relay cannot carry TLS)');
    return undefined;
  }
  if (choice === 'js') {
    logger.info({ relay: 'js' }, 'tunnels stay on stream pipes (HERALD_RELAY=js)');
    return undefined;
  }
  let native: { relay: Relay } | { error: string };
  try {
    // An optional dependency: absent when its install was skipped or failed.
    const relay = await import('@herald/relay');
    native = relay.nativeRelay({ lingerMs: HALF_CLOSE_LINGER_MS, idleMs: config.tunnelIdleMs });
  } catch (error) {
    native = { error: `@herald/relay is not installed (${(error as Error).message.split('\n', 1)[0]})` };
  }
  if ('relay' in native) {
    logger.info({ relay: 'native' }, 'open tunnels move to the native relay');
    return native.relay;
  }
  if (choice === 'native') throw new ConfigError(`HERALD_RELAY=native, but the native relay is not available: ${native.error}`);
  logger.warn({ relay: 'js', reason: native.error }, 'native relay not available; tunnels stay on stream pipes');
  return undefined;
}
