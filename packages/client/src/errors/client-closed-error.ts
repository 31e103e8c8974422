import { HeraldError } from './herald-error.js';

/**
 * The request was not sent: the client is `disconnected` (never connected, `close()`d, or
 * stopped by a close code that forbids reconnecting). `code` = `client_closed`.
 */
export class ClientClosedError extends HeraldError {
  override name = 'ClientClosedError';

  constructor(message = 'client is disconnected') {
    super('client_closed', message);
  }
}
