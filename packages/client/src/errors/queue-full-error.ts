import { HeraldError } from './herald-error.js';

/** The offline queue already holds `maxQueue` requests while the client reconnects (`code` = `queue_full`). */
export class QueueFullError extends HeraldError {
  override name = 'QueueFullError';

  constructor(limit: number) {
    super('queue_full', `offline queue is full (${limit} requests)`);
  }
}
