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
  const hops = header.split(',').map((h) => canonical(h.trim())).filter((h) => isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}

/** Canonical set of trusted proxy addresses from a list. */
export function trustedProxies(list: readonly string[] = []): ReadonlySet<string> {
  return new Set(list.map(canonical));
}
