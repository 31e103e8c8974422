/**
 * The HTTP fallback of the channel protocol (SPEC §9, docs/protocol.md "HTTP fallback"): the same
 * JSON frames as `/ws`, carried by `GET /sse` (an EventSource stream), `GET /poll` (long-polling)
 * and `POST /emit` (client frames). This file holds what server and client must agree on: the
 * session id, the SSE event id, the close frame and the base64 form of binary frames.
 */

/** Names of the HTTP fallback transports, as the client's `transports` option spells them. */
export type HttpTransportName = 'sse' | 'long-polling';

/** Separates the owner node id from the random part of a session id (never in a node id). */
const SESSION_SEPARATOR = '~';
/** Separates the session id from the sequence number in an SSE event id. */
const EVENT_ID_SEPARATOR = ':';

const NODE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const RANDOM_RE = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * Builds a session id: `<owner node id>~<random base64url>`. The owner is in the id so that any
 * worker can forward a request for the session to the node that holds it (no stickiness).
 */
export function formatSessionId(node: string, random: string): string {
  return `${node}${SESSION_SEPARATOR}${random}`;
}

/** The owner node of a well-formed session id; `undefined` for anything else. */
export function sessionOwner(id: unknown): string | undefined {
  if (typeof id !== 'string' || id.length > 140) return undefined;
  const at = id.lastIndexOf(SESSION_SEPARATOR);
  if (at < 0) return undefined;
  const node = id.slice(0, at);
  return NODE_RE.test(node) && RANDOM_RE.test(id.slice(at + 1)) ? node : undefined;
}

/** The SSE event id of frame `seq` of a session: `<session id>:<seq>`. */
export function formatEventId(session: string, seq: number): string {
  return `${session}${EVENT_ID_SEPARATOR}${seq}`;
}

/** Parses an SSE event id (a `Last-Event-ID`); `undefined` when malformed. */
export function parseEventId(id: unknown): { session: string; seq: number } | undefined {
  if (typeof id !== 'string') return undefined;
  const at = id.lastIndexOf(EVENT_ID_SEPARATOR);
  if (at < 0) return undefined;
  const session = id.slice(0, at);
  const digits = id.slice(at + 1);
  if (sessionOwner(session) === undefined || !/^\d{1,15}$/.test(digits)) return undefined;
  return { session, seq: Number(digits) };
}

/**
 * The last frame of an HTTP session: what a WebSocket close frame is on `/ws`. After it the
 * session is gone; the client reconnects (or not) exactly as after a WebSocket close with `code`.
 */
export interface HttpCloseFrame {
  type: 'close';
  code: number;
  reason: string;
}

/** Encodes the close frame of an HTTP session. */
export function encodeHttpClose(code: number, reason: string): string {
  const frame: HttpCloseFrame = { type: 'close', code, reason };
  return JSON.stringify(frame);
}

/**
 * A binary channel frame in JSON, both directions: `data` is the base64 (RFC 4648 §4, with
 * padding) of the complete `/ws` binary frame `[0x01][u16 BE channel length][channel][payload]`.
 * The server checks it exactly as a binary WebSocket frame.
 */
export interface HttpBinaryFrame {
  type: 'binary';
  data: string;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Base64 of `bytes` (no Buffer, no btoa: runs in browsers and Node alike). */
export function toBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += `${B64[n >> 18]!}${B64[(n >> 12) & 63]!}==`;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += `${B64[n >> 18]!}${B64[(n >> 12) & 63]!}${B64[(n >> 6) & 63]!}=`;
  }
  return out;
}

const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/** Decodes base64 (padding optional); `undefined` when `text` is not base64. */
export function fromBase64(text: string): Uint8Array | undefined {
  const s = text.replace(/=+$/, '');
  if (s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const c of s) {
    const v = B64_INDEX.get(c);
    if (v === undefined) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** The JSON text of a binary channel frame in its HTTP form. */
export function encodeHttpBinary(frame: Uint8Array): string {
  const json: HttpBinaryFrame = { type: 'binary', data: toBase64(frame) };
  return JSON.stringify(json);
}
