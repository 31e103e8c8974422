import { CloseCode, ErrorCode } from '@herald/protocol';
import type { Authenticator } from './auth.js';
import type { Closable } from './drain.js';
import type { Identity } from './identity.js';
import { FrameError } from './errors/frame-error.js';
import { TokenError } from './errors/token-error.js';

/** setTimeout's longest delay; later token expiries are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Arms the auth deadline of a session awaiting its `auth` frame (mode `required` without a token
 * at upgrade): closes it with 4001 when the deadline passes. Clear the timer once authenticated.
 */
export function armAuthDeadline(session: Closable, timeoutMs: number): NodeJS.Timeout {
  const timer = setTimeout(() => session.close(CloseCode.Unauthorized, 'authentication timeout'), timeoutMs);
  timer.unref();
  return timer;
}

/**
 * Arms the token expiry of `identity`: closes the session with 4001 when it passes (at once when
 * it already has). Returns the timer (undefined when the identity does not expire); clear it on close.
 */
export function armExpiry(session: Closable, identity: Identity): NodeJS.Timeout | undefined {
  const at = identity.expiresAt;
  if (at === undefined) return undefined;
  const ms = at - Date.now();
  if (ms <= 0) {
    session.close(CloseCode.Unauthorized, 'token expired');
    return undefined;
  }
  // Re-armed in steps: setTimeout cannot wait longer than about 24.8 days.
  const timer = setTimeout(() => armExpiry(session, identity), Math.min(ms, MAX_TIMER_MS));
  timer.unref();
  return timer;
}

/** The outcome of an `auth` frame: the new identity, or the reason to close with 4001. */
export type AuthOutcome = { ok: true; identity: Identity } | { ok: false; reason: string };

/**
 * Verifies the token of an `auth` frame for a session with `current` identity. Throws a
 * {@link FrameError} (`bad_request`) when the frame is not acceptable at all: authentication off,
 * already authenticated, or subscriptions made before (an anonymous session of mode `optional`
 * must not keep subscriptions made under other permissions). An invalid or expired token is an
 * outcome, not an error: the session closes with 4001 (its reason is safe to show and to log).
 */
export async function verifyAuthFrame(auth: Authenticator | undefined, current: Identity, subscriptions: number, token: string): Promise<AuthOutcome> {
  if (!auth || auth.mode === 'none') throw new FrameError(ErrorCode.BadRequest, 'authentication is off on this server');
  if (current.authenticated) throw new FrameError(ErrorCode.BadRequest, 'already authenticated');
  if (subscriptions > 0) throw new FrameError(ErrorCode.BadRequest, 'authenticate before subscribing');
  try {
    return { ok: true, identity: await auth.verify(token) };
  } catch (err) {
    if (err instanceof TokenError) return { ok: false, reason: err.message.slice(0, 120) }; // a close reason holds 123 bytes
    throw err;
  }
}
