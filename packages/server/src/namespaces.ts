import { z } from 'zod';
import { namespaceOf } from '@herald/protocol';

/** Options of a namespace (the part of a channel name before the first `:`). */
export interface NamespaceOptions {
  /** Whether joins/leaves are tracked and `presence` queries answered. @default true */
  presence: boolean;
  /** Messages kept per channel for recovery; 0 disables history (no offsets). @default 100 */
  historySize: number;
  /** How long history is kept after the last publish, in ms. @default 300000 */
  historyTtlMs: number;
  /** Whether clients may publish (the HTTP API always may). @default true */
  clientPublish: boolean;
  /** Whether a client must be authenticated (have a token) to subscribe. @default false */
  requireAuth: boolean;
}

/** Schema of one namespace's options in the `HERALD_CONFIG` file; every field optional. */
export const NamespaceOptionsSchema = z
  .object({
    presence: z.boolean(),
    historySize: z.number().int().min(0).max(100_000),
    historyTtlMs: z.number().int().min(1000),
    clientPublish: z.boolean(),
    requireAuth: z.boolean(),
  })
  .partial()
  .strict();

/** The default namespace's options: presence on, 100 messages kept 300 s, clients may publish. */
export const DEFAULT_NAMESPACE: NamespaceOptions = {
  presence: true,
  historySize: 100,
  historyTtlMs: 300_000,
  clientPublish: true,
  requireAuth: false,
};

/**
 * Resolves a channel's options: its namespace's own options over the default namespace's
 * (which the key `""` or `"default"` may override), over {@link DEFAULT_NAMESPACE}.
 */
export class Namespaces {
  private readonly base: NamespaceOptions;
  private readonly resolved = new Map<string, NamespaceOptions>();

  constructor(private readonly config: Record<string, Partial<NamespaceOptions>> = {}) {
    this.base = { ...DEFAULT_NAMESPACE, ...config['default'], ...config[''] };
  }

  /** Options for `channel`. */
  forChannel(channel: string): NamespaceOptions {
    const ns = namespaceOf(channel);
    let opts = this.resolved.get(ns);
    if (!opts) {
      // Own properties only: a namespace named `constructor` or `__proto__` is just unknown.
      const own = Object.hasOwn(this.config, ns) ? this.config[ns] : undefined;
      opts = ns === '' || !own ? this.base : { ...this.base, ...own };
      // Bounded: only configured namespaces are cached, unknown ones resolve to `base`.
      if (ns === '' || own) this.resolved.set(ns, opts);
    }
    return opts;
  }
}
