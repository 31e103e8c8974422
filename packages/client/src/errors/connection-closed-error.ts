import { HeraldError } from './herald-error.js';

/**
 * The transport closed after the request was sent but before it was answered
 * (`code` = `connection_closed`). The outcome is unknown: a publish may or may not have
 * reached the channel, so the client does not resend it on its own (no silent duplicates).
 */
export class ConnectionClosedError extends HeraldError {
  override name = 'ConnectionClosedError';

  constructor(
    message: string,
    /** The close code of the transport. */
    readonly closeCode?: number,
  ) {
    super('connection_closed', message);
  }
}
