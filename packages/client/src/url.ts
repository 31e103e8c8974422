/**
 * Builds the WebSocket URL of an attempt. Accepts `ws:`/`wss:` URLs, `http:`/`https:` URLs
 * (mapped to `ws:`/`wss:`) and, in a browser, a path such as `/ws` (resolved against the
 * page, so the demo works behind any host and scheme). Adds `params` and, when given, `token`.
 */
export function buildUrl(base: string, params: Record<string, string>, token?: string): string {
  const location = (globalThis as { location?: { href: string } }).location;
  const url = location ? new URL(base, location.href) : new URL(base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${base}`);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  if (token !== undefined) url.searchParams.set('token', token);
  return url.toString();
}

/**
 * Builds the URL of an HTTP fallback endpoint (`sse`, `poll` or `emit`) from the client's URL:
 * `ws:`/`wss:` become `http:`/`https:`, and a path ending in `/ws` ends in `/<endpoint>` instead
 * (`wss://host/herald/ws` → `https://host/herald/sse`); any other path gets `/<endpoint>` appended.
 */
export function buildHttpUrl(base: string, endpoint: 'sse' | 'poll' | 'emit', params: Record<string, string>, token?: string): string {
  const location = (globalThis as { location?: { href: string } }).location;
  const url = location ? new URL(base, location.href) : new URL(base);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`not a Herald URL: ${base}`);
  url.pathname = /\/ws$/.test(url.pathname) ? url.pathname.replace(/ws$/, endpoint) : `${url.pathname.replace(/\/$/, '')}/${endpoint}`;
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  if (token !== undefined) url.searchParams.set('token', token);
  return url.toString();
}
