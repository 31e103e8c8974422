#!/usr/bin/env node
/**
 * The floor of a Node proxy hop: a bare `http-proxy` server that tunnels every WebSocket
 * upgrade to one of `HERALD_WORKERS` (`host:port,…`), chosen by a hash of `?sid=`. No health
 * checks, no discovery, no accounting — what herald-balancer adds on top is the difference.
 * Prints `{"msg":"listening","port":N}` once listening. Env: `PORT` (0), `HERALD_WORKERS`.
 */
import { createServer } from 'node:http';
import httpProxy from 'http-proxy';

const targets = (process.env.HERALD_WORKERS ?? '').split(',').filter(Boolean).map((w) => `http://${w}`);
if (targets.length === 0) {
  console.error('http-proxy-server: set HERALD_WORKERS');
  process.exit(1);
}
const proxy = httpProxy.createProxyServer({ ws: true, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  // `res` is the client socket for upgrades, a ServerResponse for plain requests.
  if ('writeHead' in res) res.writeHead(502).end();
  else res.destroy();
});

/** FNV-1a of the sticky key: cheap, and spreads sequential sids evenly enough for a benchmark. */
function pick(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return targets[(h >>> 0) % targets.length]!;
}

const server = createServer((req, res) => proxy.web(req, res, { target: pick('') }));
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => undefined);
  const sid = new URL(req.url ?? '/', 'http://x').searchParams.get('sid') ?? '';
  proxy.ws(req, socket, head, { target: pick(sid) });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port }));
});
process.on('SIGTERM', () => process.exit(0));
