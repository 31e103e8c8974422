/** The WebSocket subprotocol of Herald's channel protocol; the server selects it when offered. */
export const HERALD_PROTOCOL = 'herald.v1';

/**
 * Prefix of a `Sec-WebSocket-Protocol` entry carrying a token, for browsers (which cannot
 * set `Authorization` on a WebSocket): offer `["herald.v1", "herald.token.<jwt>"]`. A JWT is
 * base64url parts joined by dots, all valid in a protocol token (RFC 6455 §4.1). The server
 * never selects this entry, so the token is not echoed back.
 */
export const TOKEN_PROTOCOL_PREFIX = 'herald.token.';
