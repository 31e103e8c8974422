import { HeraldError } from './herald-error.js';

/**
 * The server closed with 4001 (token missing, invalid or expired) and no fresh token could be
 * had: there is no `getToken` option, or it failed or returned nothing. `code` = `unauthorized`.
 */
export class UnauthorizedError extends HeraldError {
  override name = 'UnauthorizedError';

  constructor(message: string) {
    super('unauthorized', message);
  }
}
