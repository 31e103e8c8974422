/**
 * A token bucket: holds up to `burst` tokens and gains `ratePerSec` per second. Refilled
 * lazily on each call, so an idle bucket costs nothing (no timers).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /**
   * @param ratePerSec tokens added per second; 0 means unlimited (every take succeeds).
   * @param burst capacity; the bucket starts full.
   * @param now clock in ms (tests pass a fake one).
   */
  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `n` tokens if there are enough; returns whether it did. */
  take(n = 1): boolean {
    if (this.ratePerSec <= 0) return true;
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.ratePerSec) / 1000);
    this.last = t;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Gives back `n` tokens taken by a {@link take} whose operation did not happen. */
  refund(n = 1): void {
    this.tokens = Math.min(this.burst, this.tokens + n);
  }
}

/** Per-connection rate limits of `/ws`. A rate of 0 disables that limit. */
export interface RateLimits {
  /** Frames (messages and pings) per second. @default 100 */
  framesPerSec: number;
  /** Frames allowed in a burst. @default 200 */
  framesBurst: number;
  /** Message bytes per second. @default 1048576 */
  bytesPerSec: number;
  /** Message bytes allowed in a burst; raised to the max message size if below it. @default 1048576 */
  bytesBurst: number;
  /**
   * Unsolicited error frames (answering frames without an `id`) per second sent to one
   * connection; more are dropped. Answers to frames with an `id` are never dropped: those frames
   * are bounded by the frame rate already. @default 5
   */
  errorsPerSec: number;
  /** Error frames in a burst. @default 20 */
  errorsBurst: number;
  /**
   * Refused frames tolerated within about 10 s; one more closes the connection with 4029.
   * 0 never closes. @default 100
   */
  maxRefused: number;
}

/** The default {@link RateLimits}. */
export const DEFAULT_RATE_LIMITS: RateLimits = Object.freeze({
  framesPerSec: 100,
  framesBurst: 200,
  bytesPerSec: 1024 * 1024,
  bytesBurst: 1024 * 1024,
  errorsPerSec: 5,
  errorsBurst: 20,
  maxRefused: 100,
});

/** Rate limits that are all off: for benchmarks and tests that flood on purpose. */
export const NO_RATE_LIMITS: RateLimits = Object.freeze({
  framesPerSec: 0,
  framesBurst: 1,
  bytesPerSec: 0,
  bytesBurst: 1,
  errorsPerSec: 0,
  errorsBurst: 1,
  maxRefused: 0,
});

/** What to do with an incoming frame. */
export type RateVerdict = 'ok' | 'refused' | 'abuse';

/**
 * The rate limiter of one connection: a frame bucket and a byte bucket decide whether a
 * frame is handled; refusals drain a third bucket (capacity `maxRefused`, refilled over 10 s)
 * and when it is empty the abuse is sustained and the connection is to be closed with 4029.
 * A fourth bucket caps the unsolicited error frames sent back (frames without an `id` get no
 * other answer), so a flood of bad frames cannot make the server flood the client (or spend its
 * send buffer) in return.
 */
export class ConnectionRateLimiter {
  // The frame and byte buckets, inline rather than two TokenBucket objects (memory per
  // connection): they are refilled at the same moments, so they share one clock reading.
  private framesLeft: number;
  private bytesLeft: number;
  private readonly bytesBurst: number;
  private last: number;
  // Made on first use: most connections never get an error or a refusal (memory per
  // connection). A bucket made later starts full, as one made at connect time would be by then.
  private errors?: TokenBucket;
  private refusals?: TokenBucket;
  /** Error frames dropped by the error cap. */
  droppedErrors = 0;

  constructor(
    private readonly limits: RateLimits,
    maxMessageBytes: number,
    private readonly now: () => number = Date.now,
  ) {
    this.framesLeft = limits.framesBurst;
    // A burst below the largest message would refuse every large message forever.
    this.bytesBurst = Math.max(limits.bytesBurst, maxMessageBytes);
    this.bytesLeft = this.bytesBurst;
    this.last = now();
  }

  /** Accounts for an incoming frame of `bytes` bytes. */
  admit(bytes: number): RateVerdict {
    const { limits } = this;
    // Refilled lazily as in TokenBucket (a rate of 0 means unlimited).
    const t = this.now();
    const elapsed = t - this.last;
    this.last = t;
    const { framesPerSec, bytesPerSec } = limits;
    if (framesPerSec > 0) this.framesLeft = Math.min(limits.framesBurst, this.framesLeft + (elapsed * framesPerSec) / 1000);
    if (bytesPerSec > 0) this.bytesLeft = Math.min(this.bytesBurst, this.bytesLeft + (elapsed * bytesPerSec) / 1000);
    // Both buckets are charged only when both allow, so a refused frame costs no budget.
    if ((framesPerSec <= 0 || this.framesLeft >= 1) && (bytesPerSec <= 0 || this.bytesLeft >= bytes)) {
      if (framesPerSec > 0) this.framesLeft -= 1;
      if (bytesPerSec > 0) this.bytesLeft -= bytes;
      return 'ok';
    }
    return this.refuse();
  }

  /**
   * Accounts for a frame refused for another reason than the rate (too many frames in flight,
   * JSON nested too deep): it drains the same refusal budget, so sustained abuse closes with 4029.
   */
  refuse(): Exclude<RateVerdict, 'ok'> {
    const { limits } = this;
    this.refusals ??= new TokenBucket(limits.maxRefused > 0 ? limits.maxRefused / 10 : 0, limits.maxRefused, this.now);
    return this.refusals.take(1) ? 'refused' : 'abuse';
  }

  /** Whether one more unsolicited error frame (answering a frame without an `id`) may be sent now. */
  allowError(): boolean {
    this.errors ??= new TokenBucket(this.limits.errorsPerSec, this.limits.errorsBurst, this.now);
    if (this.errors.take(1)) return true;
    this.droppedErrors++;
    return false;
  }
}
