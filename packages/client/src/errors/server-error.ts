import type { ErrorCode } from '@herald/protocol';
import { HeraldError } from './herald-error.js';

/**
 * The server answered a request with an `error` frame (SPEC §3), or sent one without an id
 * (e.g. a refused binary frame; those are emitted as the client's `error` event).
 */
export class ServerError extends HeraldError {
  override name = 'ServerError';

  constructor(
    /** The server's error code. */
    override readonly code: ErrorCode,
    message: string,
    /** The id of the request it answers, when it answers one. */
    readonly id?: number,
  ) {
    super(code, message);
  }
}
