/**
 * The one catalogue of Herald's WebSocket close codes and protocol error codes.
 *
 * Close codes fall in ranges that tell a client what to do next (as centrifuge's
 * `disconnect.go` does): 1000–1011 are RFC 6455 codes; 4001 means "do not reconnect
 * without a new token"; 4008 and 4029 may reconnect (4029 only after a delay).
 */

/** WebSocket close codes used by Herald. */
export const CloseCode = {
  /** Normal closure: the client or the server ended the session on purpose. */
  Normal: 1000,
  /** Going away: the worker is draining or shutting down; reconnect (through the balancer, elsewhere). */
  GoingAway: 1001,
  /** Protocol error detected by the WebSocket layer (bad frame). */
  ProtocolError: 1002,
  /** Invalid payload data, such as a text frame that is not valid UTF-8. */
  InvalidPayload: 1007,
  /** Policy violation: bad origin, abuse. */
  Policy: 1008,
  /** Message too big: a frame above the configured maximum message size. */
  TooBig: 1009,
  /** Internal server error. */
  Internal: 1011,
  /** Unauthorized: expired or invalid token, or no token before the auth deadline. Do not reconnect without a new token. */
  Unauthorized: 4001,
  /** Slow consumer: the send buffer passed its limit. May reconnect and recover from history. */
  SlowConsumer: 4008,
  /** Rate limited: sustained abuse of the rate limit. Reconnect only after a delay. */
  RateLimited: 4029,
} as const;

/** A close code from {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** How a client should react to a close code. */
export type ReconnectAdvice = 'reconnect' | 'reconnect-later' | 'new-token' | 'stop';

/**
 * Tells a client what a close code means for reconnecting.
 * - `stop`: 1000 (closed on purpose), 1008 (policy).
 * - `new-token`: 4001, reconnect only with a fresh token.
 * - `reconnect-later`: 4029, reconnect after a longer delay.
 * - `reconnect`: everything else (1001, 1006, 1011, 4008, …).
 */
export function reconnectAdvice(code: number): ReconnectAdvice {
  switch (code) {
    case CloseCode.Normal:
    case CloseCode.Policy:
      return 'stop';
    case CloseCode.Unauthorized:
      return 'new-token';
    case CloseCode.RateLimited:
      return 'reconnect-later';
    default:
      return 'reconnect';
  }
}

/** Error codes carried by `{"type":"error"}` frames and by HTTP API error bodies. */
export const ErrorCode = {
  /** The frame is not valid: bad JSON, wrong field types, unknown type, bad channel name, truncated binary header. */
  BadRequest: 'bad_request',
  /** Authentication is required, or the token is invalid. */
  Unauthorized: 'unauthorized',
  /** The user may not use that channel (subscribe, publish, presence) or that target. */
  Forbidden: 'forbidden',
  /** The target does not exist (unsubscribe from a channel not subscribed). */
  NotFound: 'not_found',
  /** The connection sent more frames or bytes than its rate allows. */
  RateLimited: 'rate_limited',
  /** The payload is larger than allowed. */
  TooLarge: 'too_large',
  /** A dependency (the broker) is down: the operation was not carried out across the cluster. */
  Unavailable: 'unavailable',
  /** An unexpected server error. */
  Internal: 'internal',
} as const;

/** An error code from {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Codes of HTTP refusals, in the one JSON error body `{"error":{"code","message"}}` that the worker
 * (API, upgrades) and the balancer send. They include every {@link ErrorCode} (the API answers with
 * those) plus the codes only an HTTP hop can give.
 */
export const HttpErrorCode = {
  ...ErrorCode,
  /** 503: the balancer has no healthy worker for the request. */
  NoWorker: 'no_worker',
  /** 502: the chosen worker failed (connection refused or reset). */
  BadGateway: 'bad_gateway',
  /** 504: the chosen worker did not answer in time. */
  GatewayTimeout: 'gateway_timeout',
  /** 429: the per-address connection cap is reached (`HERALD_MAX_CONNECTIONS_PER_IP`). */
  TooManyConnections: 'too_many_connections',
  /** 503: the process is at its total connection cap (`HERALD_MAX_CONNECTIONS`). */
  OverCapacity: 'over_capacity',
  /** 503: the process drains or shuts down; retry elsewhere (`Retry-After` when known). */
  ShuttingDown: 'shutting_down',
  /** 408: the request headers did not arrive within the handshake timeout. */
  RequestTimeout: 'request_timeout',
} as const;

/** An error code of an HTTP refusal, from {@link HttpErrorCode}. */
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];
