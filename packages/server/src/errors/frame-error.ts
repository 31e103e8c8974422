import { ErrorCode } from '@herald/protocol';
import { BrokerUnavailableError } from './broker-unavailable-error.js';

/**
 * A frame the session refuses with a documented error code: thrown by the frame handlers and
 * answered as `{"type":"error","code":…,"message":…}` (with the frame's id). Anything else a
 * handler throws is unexpected and answered `internal` (and logged).
 */
export class FrameError extends Error {
  override name = 'FrameError';

  constructor(
    /** The error code of the answer. */
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Maps a broker failure to an `unavailable` {@link FrameError}; anything else is returned unchanged. */
export function toFrameError(err: unknown): unknown {
  return err instanceof BrokerUnavailableError ? new FrameError(ErrorCode.Unavailable, err.message) : err;
}

/** For `.catch()`: rethrows a broker failure as `unavailable`, anything else as it is. */
export function unavailable(err: unknown): never {
  throw toFrameError(err);
}
