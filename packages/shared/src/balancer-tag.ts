import type { IncomingMessage } from 'node:http';

/**
 * Request header with which herald-balancer tags every upgrade it forwards: the id of the balancer
 * instance the connection came through. The balancer always overwrites what a client sent, so a
 * connection through a balancer cannot claim another balancer's id. A client that connects to a
 * worker directly can send any value; the only effect is that its own connection is closed with
 * 1001 when that balancer drains (see `drain-balancer` in {@link AdminCommand}).
 */
export const BALANCER_HEADER = 'x-herald-balancer';

/** Longest balancer id accepted (longer tags are ignored). */
export const MAX_BALANCER_ID_LENGTH = 128;

const VALID_ID = /^[A-Za-z0-9_.:@-]+$/;

/**
 * @param id - a candidate balancer id
 * @returns whether it can be used as a balancer id (1–128 characters of `[A-Za-z0-9_.:@-]`)
 */
export function isBalancerId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_BALANCER_ID_LENGTH && VALID_ID.test(id);
}

/**
 * @param req - an upgrade request
 * @returns the balancer id it was tagged with, or undefined when untagged or malformed
 */
export function balancerTag(req: IncomingMessage): string | undefined {
  const value = req.headers[BALANCER_HEADER];
  return typeof value === 'string' && isBalancerId(value) ? value : undefined;
}
