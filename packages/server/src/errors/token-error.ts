/**
 * A token that cannot be accepted: bad signature, wrong algorithm, expired, not yet valid,
 * or missing/invalid claims. `message` is safe to show to the client and to log: it never
 * contains the token.
 */
export class TokenError extends Error {
  override name = 'TokenError';
  /** Whether the token was valid except for its expiry (clients may refresh it). */
  readonly expired: boolean;

  constructor(message: string, expired = false) {
    super(message);
    this.expired = expired;
  }
}
