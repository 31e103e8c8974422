import { HeraldError } from './herald-error.js';

/** A request got neither an `ack` nor an `error` within its timeout (`code` = `timeout`). */
export class TimeoutError extends HeraldError {
  override name = 'TimeoutError';

  constructor(message: string) {
    super('timeout', message);
  }
}
