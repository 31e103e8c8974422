import type { ClientFrame, ServerFrame } from './messages.js';

/** Encodes a server → client frame as JSON text. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** Encodes a client → server frame as JSON text. */
export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}
