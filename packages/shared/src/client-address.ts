import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/**
 * Named groups accepted in `HERALD_TRUSTED_PROXIES` besides addresses and CIDR ranges.
 * `loopback`: 127.0.0.0/8 and ::1; `private`: RFC 1918 ranges and fc00::/7 (unique local).
 */
const GROUPS: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * Strips the IPv4-mapped IPv6 prefix so `::ffff:10.0.0.1` and `10.0.0.1` are the same client
 * (a dual-stack listener reports IPv4 peers in the mapped form).
 *
 * @param address - an address as reported by a socket or a header
 * @returns the normalised address
 */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim();
  if (trimmed.toLowerCase().startsWith('::ffff:') && isIP(trimmed.slice(7)) === 4) return trimmed.slice(7);
  return trimmed;
}

/**
 * The set of peers whose `X-Forwarded-For` is believed (`HERALD_TRUSTED_PROXIES`, the same format
 * for the worker and the balancer).
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  /** Entries as configured, for `/balancer/status` and logs. */
  readonly entries: readonly string[];

  /**
   * @param entries - addresses, CIDR ranges (`10.0.0.0/8`) or the groups `loopback` / `private`
   * @throws Error naming the first invalid entry
   */
  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const entry of entries) {
      const group = GROUPS[entry];
      for (const item of group ?? [entry]) this.add(item, entry);
    }
  }

  private add(item: string, original: string): void {
    const slash = item.indexOf('/');
    const address = slash < 0 ? item : item.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`invalid trusted proxy ${JSON.stringify(original)}: not an IP address, CIDR, loopback or private`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) {
      this.list.addAddress(address, type);
      return;
    }
    const prefix = Number(item.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      throw new Error(`invalid trusted proxy ${JSON.stringify(original)}: bad prefix length`);
    }
    this.list.addSubnet(address, prefix, type);
  }

  /**
   * @param address - a peer address (normalised or not)
   * @returns whether that peer is a trusted proxy
   */
  has(address: string): boolean {
    const normal = normalizeAddress(address);
    const family = isIP(normal);
    if (family === 0) return false;
    return this.list.check(normal, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * The address of the client that sent `req`. `X-Forwarded-For` is walked from the right only
 * while the hop that appended the entry is a trusted proxy, so a client cannot pick its own
 * sticky key or dodge the per-IP cap by sending the header itself.
 *
 * @param req - the request
 * @param trusted - the trusted proxies
 * @returns a normalised address (`'unknown'` when the socket is already gone)
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies): string {
  let address = normalizeAddress(req.socket.remoteAddress ?? 'unknown');
  if (!trusted.has(address)) return address;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => normalizeAddress(hop))
    .filter((hop) => hop !== '');
  while (hops.length > 0 && trusted.has(address)) {
    const hop = hops.pop()!;
    // A garbage entry ends the walk: what lies left of it is not trustworthy either.
    if (isIP(hop) === 0) break;
    address = hop;
  }
  return address;
}
