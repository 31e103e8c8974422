/** Channel names: 1–200 bytes of `[A-Za-z0-9_\-:.@/=,]` (all ASCII, so bytes = characters). */
const CHANNEL_RE = /^[A-Za-z0-9_\-:.@/=,]{1,200}$/;

/** The longest channel name, in bytes. */
export const MAX_CHANNEL_LENGTH = 200;

/** True when `name` is a valid channel name. */
export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_RE.test(name);
}

/**
 * The namespace of a channel: the part before the first `:`, or `''` (the default
 * namespace) when there is no `:`.
 */
export function namespaceOf(channel: string): string {
  const i = channel.indexOf(':');
  return i === -1 ? '' : channel.slice(0, i);
}
