import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloseCode, ErrorCode, isValidChannel } from '@herald/protocol';
import type { Broker } from './broker.js';
import type { Presence } from './presence.js';
import type { Namespaces } from './namespaces.js';
import type { Metrics } from './metrics.js';
import { BodyError, readJsonBody, sendJson } from './http-util.js';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';
import { USER_ID_RE } from './identity.js';
import { sendError } from '@herald/shared';

/** What the HTTP API needs from its worker. */
export interface ApiDeps {
  /** The key clients must send as `Authorization: Bearer <key>`; unset refuses every call. */
  apiKey?: string;
  broker: Broker;
  presence: Presence;
  namespaces: Namespaces;
  metrics: Metrics;
  /** Largest accepted body, in bytes. */
  maxBodyBytes: number;
  /** Deepest accepted nesting of a JSON body (HERALD_MAX_JSON_DEPTH). @default 64 */
  maxJsonDepth?: number;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

function authorized(req: IncomingMessage, apiKey: string | undefined): boolean {
  if (!apiKey) return false;
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  // Compare digests: equal length, and timing does not reveal the key.
  return m !== null && timingSafeEqual(digest(m[1]!.trim()), digest(apiKey));
}

/**
 * The HTTP API under `/api/`: `POST /api/publish`, `GET /api/presence`, `POST /api/disconnect`.
 * Returns false when `pathname` is not an API route.
 */
export async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, deps: ApiDeps): Promise<boolean> {
  const route = `${req.method} ${url.pathname}`;
  if (!['POST /api/publish', 'GET /api/presence', 'POST /api/disconnect'].includes(route)) {
    if (!url.pathname.startsWith('/api/')) return false;
    sendError(res, 404, ErrorCode.NotFound, `no route ${route}`);
    return true;
  }
  if (!authorized(req, deps.apiKey)) {
    sendError(res, 401, ErrorCode.Unauthorized, 'missing or wrong API key', { 'www-authenticate': 'Bearer' });
    return true;
  }
  try {
    switch (route) {
      case 'POST /api/publish': {
        const body = await readJsonBody(req, deps.maxBodyBytes, deps.maxJsonDepth);
        const { channel, data } = (body ?? {}) as { channel?: unknown; data?: unknown };
        if (!isValidChannel(channel)) return sendError(res, 400, ErrorCode.BadRequest, 'invalid or missing "channel"'), true;
        if (data === undefined) return sendError(res, 400, ErrorCode.BadRequest, '"data" is required'), true;
        const ns = deps.namespaces.forChannel(channel);
        deps.metrics.publishes.inc({ origin: 'api' });
        const position = await deps.broker.publish(
          { kind: 'message', channel, data, from: null },
          ns.historySize > 0 ? { size: ns.historySize, ttlMs: ns.historyTtlMs } : undefined,
        );
        sendJson(res, 200, position ? { offset: position.offset, epoch: position.epoch } : {});
        return true;
      }
      case 'GET /api/presence': {
        const channel = url.searchParams.get('channel');
        if (!isValidChannel(channel)) return sendError(res, 400, ErrorCode.BadRequest, 'invalid or missing ?channel='), true;
        sendJson(res, 200, { channel, members: await deps.presence.members(channel) });
        return true;
      }
      default: {
        const body = await readJsonBody(req, deps.maxBodyBytes, deps.maxJsonDepth);
        const { user } = (body ?? {}) as { user?: unknown };
        if (typeof user !== 'string' || !USER_ID_RE.test(user)) return sendError(res, 400, ErrorCode.BadRequest, 'invalid or missing "user"'), true;
        await deps.broker.command({ kind: 'disconnect', user });
        sendJson(res, 200, { user, code: CloseCode.Policy });
        return true;
      }
    }
  } catch (err) {
    if (err instanceof BodyError) sendError(res, err.status, err.status === 413 ? ErrorCode.TooLarge : ErrorCode.BadRequest, err.message);
    else if (err instanceof BrokerUnavailableError) sendError(res, 503, ErrorCode.Unavailable, err.message);
    else throw err;
    return true;
  }
}
