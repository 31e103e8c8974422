/**
 * Normalises an origin (`scheme://host[:port]`) for exact comparison: lower-case scheme and
 * host, default port dropped, no path. Returns undefined for anything that is not an
 * http(s) origin (including the literal `null` that sandboxed pages and `file:` send).
 */
export function normalizeOrigin(origin: string): string | undefined {
  if (origin.length > 2048) return undefined;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  // An origin is exactly scheme://host[:port]; anything more is not an Origin header value.
  if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) return undefined;
  return url.origin;
}

/**
 * Checks the `Origin` header of upgrades against an exact allowlist, defending browsers
 * against cross-site WebSocket hijacking (a page on another site opening a socket that
 * carries the user's cookies). Entries are compared whole after normalisation, never by
 * prefix or suffix, so `https://app.example.com.evil.com` does not match `https://app.example.com`.
 *
 * Requests without an `Origin` header come from non-browser clients, which can send any
 * origin they like anyway; they are allowed and must be stopped by tokens instead.
 */
export class OriginPolicy {
  private readonly allowed?: Set<string>;

  /**
   * @param allowed the allowed origins; undefined or empty allows every origin.
   * @throws TypeError naming an entry that is not an http(s) origin.
   */
  constructor(allowed?: readonly string[]) {
    if (!allowed || allowed.length === 0) return;
    this.allowed = new Set(
      allowed.map((o) => {
        const n = normalizeOrigin(o);
        if (!n) throw new TypeError(`not an origin (scheme://host[:port]): ${JSON.stringify(o)}`);
        return n;
      }),
    );
  }

  /** Whether every origin is allowed (no allowlist configured). */
  get open(): boolean {
    return this.allowed === undefined;
  }

  /** Whether an upgrade with this `Origin` header may proceed. */
  allows(origin: string | undefined): boolean {
    if (!this.allowed || origin === undefined) return true;
    const n = normalizeOrigin(origin);
    return n !== undefined && this.allowed.has(n);
  }
}
