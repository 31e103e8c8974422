import type { ClientFrame, ServerFrame } from './messages.js';

/** Encodes a server → client frame as JSON text. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** Encodes a client → server frame as JSON text. */
export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}

const utf8 = new TextEncoder();

/** What {@link encodeMessageFrame} needs: the message with its data already as JSON text. */
export interface MessageFrameParts {
  channel: string;
  /** The JSON text (UTF-8) of `data`, inserted as is: the caller guarantees it is valid JSON. */
  json: Uint8Array;
  from?: string | null;
  offset?: number;
  epoch?: string;
}

/**
 * Encodes a `message` frame around `data` that is already JSON text, without parsing it: the
 * same bytes as {@link encodeServerFrame} of the parsed frame (up to key order), at the cost of
 * one copy. Workers use it so a published value is never parsed again on its way to subscribers.
 */
export function encodeMessageFrame(m: MessageFrameParts): Uint8Array {
  const head = utf8.encode(`{"type":"message","channel":${JSON.stringify(m.channel)},"data":`);
  let tail = m.from === undefined ? '' : `,"from":${JSON.stringify(m.from)}`;
  if (m.offset !== undefined) tail += `,"offset":${m.offset},"epoch":${JSON.stringify(m.epoch)}`;
  const end = utf8.encode(`${tail}}`);
  const out = new Uint8Array(head.length + m.json.length + end.length);
  out.set(head, 0);
  out.set(m.json, head.length);
  out.set(end, head.length + m.json.length);
  return out;
}
