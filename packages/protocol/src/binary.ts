import { ErrorCode } from './codes.js';
import { isValidChannel, MAX_CHANNEL_LENGTH } from './channel.js';
import type { Decoded } from './decode.js';

/**
 * Binary frames on `/ws`: `[0x01][u16 BE channel byte length][channel UTF-8][payload]`.
 * A client sends one to publish `payload` to `channel`; subscribers receive the same layout.
 */
export const BINARY_PUBLISH = 0x01;

/** Bytes before the channel name: the kind byte and the u16 length. */
export const BINARY_HEADER_BYTES = 3;

/** A decoded binary channel frame. */
export interface BinaryChannelFrame {
  channel: string;
  payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Builds a binary channel frame. Throws a `RangeError` on an invalid channel name. */
export function encodeBinaryFrame(channel: string, payload: Uint8Array): Uint8Array {
  if (!isValidChannel(channel)) throw new RangeError(`invalid channel name: ${String(channel).slice(0, 40)}`);
  const name = encoder.encode(channel);
  const out = new Uint8Array(BINARY_HEADER_BYTES + name.length + payload.length);
  out[0] = BINARY_PUBLISH;
  out[1] = name.length >> 8;
  out[2] = name.length & 0xff;
  out.set(name, BINARY_HEADER_BYTES);
  out.set(payload, BINARY_HEADER_BYTES + name.length);
  return out;
}

/**
 * Parses a binary channel frame. Never throws: an unknown first byte, a truncated
 * header or an invalid channel name is a `bad_request` error. The payload is a view
 * into `data`, not a copy.
 */
export function decodeBinaryFrame(data: Uint8Array): Decoded<BinaryChannelFrame> {
  const bad = (message: string) => ({ ok: false as const, error: { code: ErrorCode.BadRequest, message } });
  if (data.length === 0 || data[0] !== BINARY_PUBLISH) return bad('binary frames must start with 0x01');
  if (data.length < BINARY_HEADER_BYTES) return bad('truncated binary header');
  const length = (data[1]! << 8) | data[2]!;
  if (length === 0 || length > MAX_CHANNEL_LENGTH) return bad('invalid channel name length');
  if (data.length < BINARY_HEADER_BYTES + length) return bad('truncated binary header');
  const channel = decoder.decode(data.subarray(BINARY_HEADER_BYTES, BINARY_HEADER_BYTES + length));
  if (!isValidChannel(channel)) return bad('invalid channel name: 1-200 characters of [A-Za-z0-9_-:.@/=,]');
  return { ok: true, frame: { channel, payload: data.subarray(BINARY_HEADER_BYTES + length) } };
}
