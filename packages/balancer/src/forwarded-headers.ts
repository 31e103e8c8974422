import type { IncomingMessage } from 'node:http';
import { normalizeAddress, type TrustedProxies } from '@herald/shared';

/**
 * Rewrites the `X-Forwarded-*` headers a worker receives: the chain is kept (and extended by the
 * peer's address) only when the peer is a trusted proxy; otherwise it is replaced, so workers can
 * believe what the balancer passes on.
 *
 * @param req - the request; its headers are modified in place before proxying
 * @param trusted - the trusted proxies
 * @param encrypted - whether the client connection is TLS
 */
export function setForwardedHeaders(req: IncomingMessage, trusted: TrustedProxies, encrypted: boolean): void {
  const peer = normalizeAddress(req.socket.remoteAddress ?? '');
  const fromProxy = peer !== '' && trusted.has(peer);
  const prior = req.headers['x-forwarded-for'];
  const chain = fromProxy && prior ? (Array.isArray(prior) ? prior.join(', ') : prior) : '';
  req.headers['x-forwarded-for'] = chain ? `${chain}, ${peer}` : peer;
  const proto = req.headers['x-forwarded-proto'];
  if (!fromProxy || !proto) req.headers['x-forwarded-proto'] = encrypted ? 'https' : 'http';
  const host = req.headers['x-forwarded-host'];
  if ((!fromProxy || !host) && req.headers.host) req.headers['x-forwarded-host'] = req.headers.host;
}
