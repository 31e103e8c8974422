/** Who is behind a connection, as established by authentication. */
export interface Identity {
  /** The user id (`sub` of the token, or `?user=` in auth mode `none`); null when anonymous. */
  user: string | null;
  /** Whether the identity comes from a verified token (false for anonymous and `?user=`). */
  authenticated: boolean;
  /** Glob patterns of channels the user may subscribe to; undefined = no restriction. */
  channels?: string[];
  /** Glob patterns of channels the user may publish to; undefined = no restriction. */
  publish?: string[];
  /** When the token expires (ms since epoch); the connection is closed with 4001 then. */
  expiresAt?: number;
}

/** The identity of an anonymous connection. */
export const ANONYMOUS: Identity = Object.freeze({ user: null, authenticated: false });

/** User ids: 1–200 characters of `[A-Za-z0-9_\-.@:]`. */
export const USER_ID_RE = /^[A-Za-z0-9_\-.@:]{1,200}$/;
