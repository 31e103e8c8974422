import { ErrorCode } from './codes.js';
import { isValidChannel } from './channel.js';
import type { ClientFrame, ServerFrame, StreamPosition } from './messages.js';
import { DEFAULT_MAX_JSON_DEPTH, exceedsJsonDepth } from './json-depth.js';

/** Why a frame was refused: the `error` frame the server answers with. */
export interface FrameError {
  code: ErrorCode;
  message: string;
  /** The frame's id, when it had a valid one, so the error can answer it. */
  id?: number;
  /**
   * Set when the frame nested deeper than the depth limit: a hostile frame rather than a
   * mistake, which the server logs once per connection and counts as a refused frame.
   */
  tooDeep?: true;
}

/** Options of {@link decodeClientFrame} and {@link decodeServerFrame}. */
export interface DecodeOptions {
  /** Deepest nesting of arrays/objects accepted (the frame object is depth 1). @default 64 */
  maxDepth?: number;
}

/** The result of decoding a frame: the frame, or the error to answer with. */
export type Decoded<T> = { ok: true; frame: T } | { ok: false; error: FrameError };

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

/** The longest `user` value in a `send` frame, in characters. */
export const MAX_USER_LENGTH = 200;

function fail(message: string, id?: number): { ok: false; error: FrameError } {
  return { ok: false, error: id === undefined ? { code: ErrorCode.BadRequest, message } : { code: ErrorCode.BadRequest, message, id } };
}

function channelOf(o: Obj, id: number | undefined): string | FrameError {
  if (typeof o.channel !== 'string') return { code: ErrorCode.BadRequest, message: '"channel" must be a string', id };
  if (!isValidChannel(o.channel)) {
    return { code: ErrorCode.BadRequest, message: 'invalid channel name: 1-200 characters of [A-Za-z0-9_-:.@/=,]', id };
  }
  return o.channel;
}

function positionOf(v: unknown): StreamPosition | undefined {
  if (!isObject(v)) return undefined;
  const { offset, epoch } = v;
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) return undefined;
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) return undefined;
  return { offset: offset as number, epoch };
}

/**
 * Decodes and validates one client → server text frame. Never throws: anything
 * invalid comes back as a `bad_request` {@link FrameError}, carrying the frame's `id`
 * when the id itself was valid. Unknown fields are ignored. A frame nested deeper than
 * `options.maxDepth` is refused before it is parsed into objects (`tooDeep` set).
 */
export function decodeClientFrame(text: string, options: DecodeOptions = {}): Decoded<ClientFrame> {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  if (exceedsJsonDepth(text, maxDepth)) return tooDeep(text, maxDepth);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('invalid JSON');
  }
  if (!isObject(value)) return fail('a frame must be a JSON object');
  let id: number | undefined;
  if (value.id !== undefined) {
    if (!isPositiveInt(value.id)) return fail('"id" must be a positive integer');
    id = value.id;
  }
  const withId = <T extends ClientFrame>(frame: T): Decoded<ClientFrame> =>
    ({ ok: true, frame: id === undefined ? frame : { ...frame, id } });
  switch (value.type) {
    case 'subscribe': {
      const channel = channelOf(value, id);
      if (typeof channel !== 'string') return { ok: false, error: channel };
      if (value.since === undefined || value.since === null) return withId({ type: 'subscribe', channel });
      const since = positionOf(value.since);
      if (!since) return fail('"since" must be {"offset": integer >= 0, "epoch": string}', id);
      return withId({ type: 'subscribe', channel, since });
    }
    case 'unsubscribe':
    case 'presence': {
      const channel = channelOf(value, id);
      if (typeof channel !== 'string') return { ok: false, error: channel };
      return withId({ type: value.type, channel });
    }
    case 'publish': {
      const channel = channelOf(value, id);
      if (typeof channel !== 'string') return { ok: false, error: channel };
      if (!('data' in value) || value.data === undefined) return fail('"data" is required', id);
      return withId({ type: 'publish', channel, data: value.data });
    }
    case 'send': {
      if (typeof value.user !== 'string' || value.user.length === 0 || value.user.length > MAX_USER_LENGTH) {
        return fail(`"user" must be a string of 1-${MAX_USER_LENGTH} characters`, id);
      }
      if (!('data' in value) || value.data === undefined) return fail('"data" is required', id);
      return withId({ type: 'send', user: value.user, data: value.data });
    }
    case 'auth': {
      if (typeof value.token !== 'string' || value.token.length === 0) return fail('"token" must be a non-empty string', id);
      return withId({ type: 'auth', token: value.token });
    }
    case 'ping':
      return withId({ type: 'ping' });
    default:
      return typeof value.type === 'string'
        ? fail(`unknown type ${JSON.stringify(value.type.slice(0, 32))}`, id)
        : fail('"type" must be a string', id);
  }
}

/**
 * The answer to a frame nested too deep: `bad_request`, with the frame's id when it has a
 * valid one. JSON.parse itself is iterative (no stack to exhaust), so parsing once more to
 * find the id is safe; this runs for refused frames only.
 */
function tooDeep(text: string, maxDepth: number): { ok: false; error: FrameError } {
  let id: unknown;
  try {
    const value: unknown = JSON.parse(text);
    id = isObject(value) ? value.id : undefined;
  } catch {
    // Invalid as well as deep: the depth is the answer.
  }
  const error: FrameError = { code: ErrorCode.BadRequest, message: `JSON nested deeper than ${maxDepth} levels`, tooDeep: true };
  if (isPositiveInt(id)) error.id = id;
  return { ok: false, error };
}

const SERVER_TYPES = new Set(['welcome', 'message', 'join', 'leave', 'direct', 'ack', 'error', 'pong', 'lost']);

/**
 * Decodes one server → client text frame (used by the client). Checks only what the
 * client relies on: a JSON object with a known `type`, nested no deeper than the depth limit.
 * Returns `undefined` otherwise.
 */
export function decodeServerFrame(text: string, options: DecodeOptions = {}): ServerFrame | undefined {
  if (exceedsJsonDepth(text, options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.type !== 'string' || !SERVER_TYPES.has(value.type)) return undefined;
  return value as unknown as ServerFrame;
}
