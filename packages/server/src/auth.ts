import { HERALD_PROTOCOL, TOKEN_PROTOCOL_PREFIX } from '@herald/protocol';
import type { IncomingMessage } from 'node:http';
import { ANONYMOUS, USER_ID_RE, type Identity } from './identity.js';
import { MAX_TOKEN_LENGTH, type TokenVerifier } from './token-verifier.js';
import { TokenError } from './errors/token-error.js';
import { ConfigError } from '@herald/shared';

/**
 * How connections authenticate:
 * - `none`: anonymous; a client may name itself with `?user=` (an unauthenticated identity
 *   for demos and trusted networks). Tokens are ignored.
 * - `optional`: a valid token makes the connection authenticated, no token leaves it
 *   anonymous, an invalid token is refused.
 * - `required`: every `/ws` connection needs a valid token, at the upgrade or in a first
 *   `auth` frame before the deadline.
 */
export type AuthMode = 'none' | 'optional' | 'required';


/** The outcome of checking an upgrade request. */
export type UpgradeAuth =
  | {
      ok: true;
      identity: Identity;
      /** True when the connection must send an `auth` frame before anything else (mode `required`, no token yet). */
      awaitingAuth: boolean;
    }
  | {
      ok: false;
      status: number;
      message: string;
      headers?: Record<string, string>;
      /**
       * Refuse by upgrading and closing with 4001 instead of answering `status`: for tokens from
       * `?token=` or the subprotocol, whose senders (browsers) cannot see an HTTP status — a
       * failed upgrade is only a 1006 there, and a client would retry the same bad token forever.
       */
      closeAfterUpgrade?: boolean;
    };

/** Options of an {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** @default "none" */
  mode?: AuthMode;
  /** Verifies tokens; required for modes `optional` and `required`. */
  verifier?: TokenVerifier;
  /** Time a connection without a token has to send its `auth` frame in mode `required`, in ms. @default 5000 */
  authTimeoutMs?: number;
}

/** Where a token was found in an upgrade request, or why the request is malformed. */
export type TokenSource = { token?: string; error?: string; from?: 'header' | 'protocol' | 'query' };

/**
 * Decides who a connection is: before the upgrade from `Authorization: Bearer`, a
 * `herald.token.<jwt>` subprotocol entry or `?token=` (in that order of precedence), or
 * after it from an `auth` frame ({@link verify}).
 */
export class Authenticator {
  readonly mode: AuthMode;
  readonly verifier?: TokenVerifier;
  readonly authTimeoutMs: number;

  /** @throws ConfigError when a mode other than `none` has no verifier. */
  constructor(options: AuthMode | AuthenticatorOptions = 'none') {
    const o = typeof options === 'string' ? { mode: options } : options;
    this.mode = o.mode ?? 'none';
    this.verifier = o.verifier;
    this.authTimeoutMs = o.authTimeoutMs ?? 5000;
    if (this.mode !== 'none' && !this.verifier) {
      throw new ConfigError(`auth mode "${this.mode}" needs HERALD_JWT_SECRET, HERALD_JWT_PUBLIC_KEY or HERALD_JWKS_FILE`);
    }
  }

  /** Finds the token of an upgrade request. */
  tokenFrom(req: IncomingMessage, url: URL): TokenSource {
    const authorization = req.headers.authorization;
    if (authorization !== undefined) {
      const m = /^Bearer +([^\s]+) *$/i.exec(authorization);
      if (!m) return { error: 'the Authorization header must be "Bearer <token>"' };
      return { token: m[1], from: 'header' };
    }
    const protocols = req.headers['sec-websocket-protocol'];
    if (typeof protocols === 'string') {
      for (const p of protocols.split(',')) {
        const entry = p.trim();
        if (entry.startsWith(TOKEN_PROTOCOL_PREFIX)) return { token: entry.slice(TOKEN_PROTOCOL_PREFIX.length), from: 'protocol' };
      }
    }
    const query = url.searchParams.get('token');
    if (query !== null) return { token: query, from: 'query' };
    return {};
  }

  /** Checks an upgrade request; `url` is its parsed URL. Never throws. */
  async fromRequest(req: IncomingMessage, url: URL): Promise<UpgradeAuth> {
    if (this.mode === 'none') {
      const named = url.searchParams.get('user');
      if (named === null || named === '') return { ok: true, identity: ANONYMOUS, awaitingAuth: false };
      if (!USER_ID_RE.test(named)) return { ok: false, status: 400, message: 'invalid user: 1-200 characters of [A-Za-z0-9_-.@:]' };
      return { ok: true, identity: { user: named, authenticated: false }, awaitingAuth: false };
    }
    const { token, error, from } = this.tokenFrom(req, url);
    if (error) return unauthorized(error);
    if (token === undefined || token === '') return { ok: true, identity: ANONYMOUS, awaitingAuth: this.mode === 'required' };
    try {
      return { ok: true, identity: await this.verify(token), awaitingAuth: false };
    } catch (err) {
      if (err instanceof TokenError) return unauthorized(err.message, from !== 'header');
      throw err;
    }
  }

  /**
   * Verifies a token given after the upgrade (`auth` frame).
   * @throws TokenError when invalid, or when this server does not verify tokens (mode `none`).
   */
  async verify(token: string): Promise<Identity> {
    if (this.mode === 'none' || !this.verifier) throw new TokenError('authentication is off on this server');
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('invalid token');
    return this.verifier.verify(token);
  }
}

function unauthorized(message: string, closeAfterUpgrade = false): UpgradeAuth {
  // RFC 6750 §3: tell the client which scheme to use and that the token was the problem.
  return { ok: false, status: 401, message, headers: { 'WWW-Authenticate': 'Bearer realm="herald", error="invalid_token"' }, closeAfterUpgrade };
}

/** Picks {@link HERALD_PROTOCOL} when the client offers it; never a token entry. */
export function selectProtocol(offered: Set<string>): string | false {
  return offered.has(HERALD_PROTOCOL) ? HERALD_PROTOCOL : false;
}
