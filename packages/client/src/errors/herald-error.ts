/**
 * Base class of every error the client produces. `code` is a stable string to branch on:
 * a server {@link ErrorCode} (`forbidden`, `unavailable`, …) or one of the client's own
 * (`timeout`, `connection_closed`, `client_closed`, `queue_full`, `unauthorized`).
 */
export class HeraldError extends Error {
  override name = 'HeraldError';

  constructor(
    /** Stable machine-readable code. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
