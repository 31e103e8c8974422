import type { IncomingMessage } from 'node:http';

/**
 * Where the sticky key comes from (`HERALD_STICKY`).
 * - `query:NAME` — a query parameter (`query:sid` is the default: `/ws?sid=…`)
 * - `cookie:NAME` — a cookie; for plain HTTP requests without it the balancer sets one
 * - `header:NAME` — a request header (e.g. `header:x-session`)
 * - `ip` — the client address (see {@link clientAddress})
 */
export type StickySource =
  | { readonly kind: 'query'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'ip' };

/** Cookie names and query parameter names: RFC 6265 token characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a `HERALD_STICKY` value.
 *
 * @param spec - `query:NAME` | `cookie:NAME` | `header:NAME` | `ip`
 * @returns the parsed source
 * @throws Error with a message naming the accepted forms when `spec` is invalid
 */
export function parseSticky(spec: string): StickySource {
  const value = spec.trim();
  if (value === 'ip') return { kind: 'ip' };
  const colon = value.indexOf(':');
  const kind = colon < 0 ? value : value.slice(0, colon);
  const name = colon < 0 ? '' : value.slice(colon + 1);
  if ((kind === 'query' || kind === 'cookie' || kind === 'header') && TOKEN.test(name)) {
    return kind === 'header' ? { kind, name: name.toLowerCase() } : { kind, name };
  }
  throw new Error(`expected query:NAME, cookie:NAME, header:NAME or ip, got ${JSON.stringify(spec)}`);
}

/**
 * Renders a source back to its `HERALD_STICKY` form (for logs and `/balancer/status`).
 *
 * @param source - a parsed source
 * @returns e.g. `query:sid`
 */
export function formatSticky(source: StickySource): string {
  return source.kind === 'ip' ? 'ip' : `${source.kind}:${source.name}`;
}

/**
 * Reads one cookie from a `Cookie` header (RFC 6265 §5.4: `name=value` pairs separated by `;`).
 *
 * @param header - the raw header, possibly absent
 * @param name - the cookie name
 * @returns the value (surrounding quotes removed), or `undefined`
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value;
  }
  return undefined;
}

/**
 * The sticky key of a request, or `undefined` when the request carries none (the balancer then
 * hashes the client address).
 *
 * @param req - the incoming request (plain HTTP or upgrade)
 * @param source - where to look
 * @returns a non-empty key, or `undefined`
 */
export function stickyKey(req: IncomingMessage, source: StickySource): string | undefined {
  let value: string | undefined;
  switch (source.kind) {
    case 'query': {
      const q = (req.url ?? '').indexOf('?');
      if (q >= 0) value = new URLSearchParams((req.url ?? '').slice(q + 1)).get(source.name) ?? undefined;
      break;
    }
    case 'cookie':
      value = readCookie(req.headers.cookie, source.name);
      break;
    case 'header': {
      const raw = req.headers[source.name];
      value = Array.isArray(raw) ? raw[0] : raw;
      break;
    }
    case 'ip':
      value = undefined;
      break;
  }
  return value === undefined || value === '' ? undefined : value;
}
