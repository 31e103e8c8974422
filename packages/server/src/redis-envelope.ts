import type { StreamPosition } from '@herald/protocol';
import { encodeCommandEnvelope } from '@herald/shared';
import type { AdminCommand, ChannelEvent, ChannelMessage, DirectMessage } from './broker.js';

/**
 * What travels through Redis pub/sub (and sits in history lists):
 *
 * ```
 * envelope := [position] header LF [payload]
 * position := "@" offset ":" epoch " "     (history messages only; written by the Lua script)
 * header   := JSON {"t":"e"|"d"|"c", "n":<sender node>, "e"|"d"|"c": <event | direct | command>, "b"?: 1, "j"?: 1}
 * payload  := the raw bytes of a binary message ("b":1), the JSON text of a text message's
 *             data ("j":1), empty otherwise
 * ```
 *
 * JSON.stringify never emits a raw line feed, so the first LF after the position ends the
 * header. Payloads travel as bytes (no base64, and a message's JSON is never parsed on the way:
 * receivers splice it into the `message` frame as is), and the position is a plain-text prefix
 * so the Lua script can add it without parsing JSON.
 */
export type Envelope =
  | { type: 'event'; node: string; event: ChannelEvent; position?: StreamPosition }
  | { type: 'direct'; node: string; direct: DirectMessage }
  | { type: 'command'; node: string; command: AdminCommand };

const LF = 0x0a;
const AT = 0x40;
const SPACE = 0x20;

/** Encodes an envelope (without position: Redis adds it to history messages). */
export function encodeEnvelope(envelope: Envelope): Buffer {
  if (envelope.type === 'command') return encodeCommandEnvelope(envelope.node, envelope.command);
  let header: Record<string, unknown>;
  let payload: Uint8Array | undefined;
  if (envelope.type === 'event') {
    const event = envelope.event;
    if (event.kind === 'message') {
      const { bytes, json, data, offset: _o, epoch: _e, ...rest } = event;
      header = { t: 'e', n: envelope.node, e: rest };
      if (bytes) {
        header.b = 1;
        payload = bytes;
      } else {
        // The text stays text: receivers put these bytes into their frames without parsing.
        header.j = 1;
        payload = json ?? Buffer.from(JSON.stringify(data));
      }
    } else {
      header = { t: 'e', n: envelope.node, e: event };
    }
  } else {
    header = { t: 'd', n: envelope.node, d: envelope.direct };
  }
  const head = Buffer.from(`${JSON.stringify(header)}\n`);
  return payload ? Buffer.concat([head, payload]) : head;
}

/** Thrown for an envelope that cannot be decoded (another version, corrupted data). */
export class EnvelopeError extends Error {
  override name = 'EnvelopeError';
}

/** Decodes an envelope received from Redis. @throws EnvelopeError */
export function decodeEnvelope(buf: Buffer): Envelope {
  let start = 0;
  let position: StreamPosition | undefined;
  if (buf[0] === AT) {
    const space = buf.indexOf(SPACE);
    const colon = buf.indexOf(':');
    if (space < 0 || colon < 0 || colon > space) throw new EnvelopeError('bad position prefix');
    position = { offset: Number(buf.toString('latin1', 1, colon)), epoch: buf.toString('utf8', colon + 1, space) };
    if (!Number.isSafeInteger(position.offset)) throw new EnvelopeError('bad offset');
    start = space + 1;
  }
  const lf = buf.indexOf(LF, start);
  if (lf < 0) throw new EnvelopeError('no header terminator');
  let header: Record<string, any>;
  try {
    header = JSON.parse(buf.toString('utf8', start, lf));
  } catch {
    throw new EnvelopeError('header is not JSON');
  }
  if (typeof header !== 'object' || header === null || typeof header.n !== 'string') throw new EnvelopeError('bad header');
  switch (header.t) {
    case 'e': {
      const event = header.e as ChannelEvent;
      if (typeof event !== 'object' || event === null || typeof event.channel !== 'string') throw new EnvelopeError('bad event');
      if (event.kind === 'message') {
        // The payload is a view into the received buffer; the hub copies it into one frame.
        if (header.b === 1) (event as ChannelMessage).bytes = buf.subarray(lf + 1);
        else if (header.j === 1) (event as ChannelMessage).json = buf.subarray(lf + 1);
        if (position) Object.assign(event, position);
      }
      return { type: 'event', node: header.n, event, position };
    }
    case 'd':
      return { type: 'direct', node: header.n, direct: header.d as DirectMessage };
    case 'c':
      return { type: 'command', node: header.n, command: header.c as AdminCommand };
    default:
      throw new EnvelopeError(`unknown envelope type ${String(header.t)}`);
  }
}
