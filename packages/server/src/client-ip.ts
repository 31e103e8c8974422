import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:1.2.3.4` and `1.2.3.4` count as one address. */
function canonical(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * The address of the client behind a request. `X-Forwarded-For` is believed only when the
 * direct peer is a trusted proxy (the balancer): then the right-most entry that is not itself
 * a trusted proxy is the client. Anyone else could put any address in that header.
 *
 * @param trusted addresses of trusted proxies; empty trusts none.
 */
export function clientIp(req: IncomingMessage, trusted: ReadonlySet<string>): string {
  const peer = canonical(req.socket.remoteAddress ?? 'unknown');
  if (!trusted.has(peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  if (typeof header !== 'string') return peer;
  const hops = header.split(',').map((h) => canonical(h.trim()));
  let address = peer;
  // Walk from the right while the hop that appended the entry is trusted (as the balancer does);
  // a garbage entry ends the walk, since what lies left of it is not trustworthy either.
  while (hops.length > 0 && trusted.has(address)) {
    const hop = hops.pop()!;
    if (isIP(hop) === 0) break;
    address = hop;
  }
  return address;
}

/** Canonical set of trusted proxy addresses from a list. */
export function trustedProxies(list: readonly string[] = []): ReadonlySet<string> {
  return new Set(list.map(canonical));
}
