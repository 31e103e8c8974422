/**
 * Reference-counted interest in keys (channels, users) that keeps a remote subscription in
 * line with local members: subscribe when the first member arrives, unsubscribe when the last
 * leaves. Changes for one key are serialized, so a quick leave-then-join never ends with the
 * remote side unsubscribed while members remain.
 */
export class Interest<M> {
  private readonly members = new Map<string, Set<M>>();
  private readonly remote = new Set<string>();
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly subscribe: (key: string) => Promise<void>,
    private readonly unsubscribe: (key: string) => Promise<void>,
    private readonly onError: (key: string, err: unknown) => void,
  ) {}

  /** Local members of `key` (empty when none). */
  get(key: string): ReadonlySet<M> | undefined {
    return this.members.get(key);
  }

  /** Number of keys with local members. */
  get size(): number {
    return this.members.size;
  }

  /** Adds a member; resolves once the remote subscription is in place. */
  add(key: string, member: M): Promise<void> {
    let set = this.members.get(key);
    if (!set) this.members.set(key, (set = new Set()));
    set.add(member);
    return this.sync(key);
  }

  /** Removes a member; the remote side is unsubscribed in the background when it was the last. */
  remove(key: string, member: M): void {
    const set = this.members.get(key);
    if (!set?.delete(member)) return;
    if (set.size === 0) {
      this.members.delete(key);
      this.sync(key).catch((err) => this.onError(key, err));
    }
  }

  private sync(key: string): Promise<void> {
    const run = async () => {
      const want = this.members.has(key);
      if (want && !this.remote.has(key)) {
        await this.subscribe(key);
        this.remote.add(key);
      } else if (!want && this.remote.has(key)) {
        this.remote.delete(key);
        await this.unsubscribe(key);
      }
    };
    const prev = this.pending.get(key);
    const next = prev ? prev.then(run, run) : run();
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.pending.set(key, settled);
    void settled.then(() => {
      if (this.pending.get(key) === settled) this.pending.delete(key);
    });
    return next;
  }
}
