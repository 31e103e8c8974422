import type { IncomingMessage } from 'node:http';
import { ANONYMOUS, USER_ID_RE, type Identity } from './identity.js';

/** How connections authenticate: `none` (anonymous, `?user=` names a demo identity), `optional`, `required`. */
export type AuthMode = 'none' | 'optional' | 'required';

/** The outcome of checking an upgrade request. */
export type UpgradeAuth =
  | { ok: true; identity: Identity }
  | { ok: false; status: number; message: string };

/**
 * Decides who a connection is before the upgrade. In mode `none` a client may name itself
 * with `?user=` — an unauthenticated identity for demos and trusted networks only.
 */
export class Authenticator {
  constructor(readonly mode: AuthMode = 'none') {}

  /** Checks an upgrade request; `url` is its parsed URL. */
  async fromRequest(_req: IncomingMessage, url: URL): Promise<UpgradeAuth> {
    const named = url.searchParams.get('user');
    if (named === null || named === '') return { ok: true, identity: ANONYMOUS };
    if (!USER_ID_RE.test(named)) return { ok: false, status: 400, message: 'invalid user: 1-200 characters of [A-Za-z0-9_-.@:]' };
    return { ok: true, identity: { user: named, authenticated: false } };
  }
}
