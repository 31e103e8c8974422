/** A scenario (or one target of it) cannot run here; the message says why. Reported, not fatal. */
export class SkipError extends Error {
  override name = 'SkipError';
}
