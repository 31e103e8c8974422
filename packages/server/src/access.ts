import type { Identity } from './identity.js';
import type { NamespaceOptions } from './namespaces.js';

/** Why an operation on a channel was refused, or undefined when allowed. */
export type Refusal = string | undefined;

/** Matches a channel against a glob pattern where `*` stands for any run of characters. */
export function globMatch(pattern: string, channel: string): boolean {
  if (!pattern.includes('*')) return pattern === channel;
  const parts = pattern.split('*');
  if (!channel.startsWith(parts[0]!) || !channel.endsWith(parts[parts.length - 1]!)) return false;
  let pos = parts[0]!.length;
  const end = channel.length - parts[parts.length - 1]!.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const at = channel.indexOf(parts[i]!, pos);
    if (at === -1 || at + parts[i]!.length > end) return false;
    pos = at + parts[i]!.length;
  }
  return pos <= end;
}

const allowedBy = (patterns: string[] | undefined, channel: string) =>
  patterns === undefined || patterns.some((p) => globMatch(p, channel));

/** May this identity subscribe to (and query the presence of) `channel`? */
export function canSubscribe(identity: Identity, channel: string, ns: NamespaceOptions): Refusal {
  if (ns.requireAuth && !identity.authenticated) return 'this namespace requires an authenticated user';
  if (!allowedBy(identity.channels, channel)) return 'the token does not allow this channel';
  return undefined;
}

/** May this identity publish to `channel`? */
export function canPublish(identity: Identity, channel: string, ns: NamespaceOptions): Refusal {
  if (!ns.clientPublish) return 'clients may not publish in this namespace';
  if (ns.requireAuth && !identity.authenticated) return 'this namespace requires an authenticated user';
  if (!allowedBy(identity.publish, channel)) return 'the token does not allow publishing to this channel';
  return undefined;
}
