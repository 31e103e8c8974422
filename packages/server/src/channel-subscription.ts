/** A live event held back while its subscription recovers from history. */
export interface HeldEvent {
  frame: Buffer | Uint8Array;
  binary: boolean;
  offset?: number;
}

/**
 * One channel subscription of a session: its recovery buffer and the order of its presence
 * join and leave.
 *
 * Recovery: from the moment the hub knows the subscription, live events are held (not written)
 * until the history read is done, so none is lost between reading history and going live; the
 * held ones already delivered from history are then dropped by offset ({@link release}).
 *
 * Presence: a leave only follows a join that happened, and never overtakes it.
 */
export class ChannelSubscription {
  private held?: HeldEvent[];
  /** The presence join, once started: resolves true when the cluster was told. */
  private joined?: Promise<boolean>;

  /** @param recovering whether live events are held until {@link release} (channels with history). */
  constructor(recovering: boolean) {
    if (recovering) this.held = [];
  }

  /** Holds a live event while recovering; returns false when it is to be written now. */
  hold(frame: Buffer | Uint8Array, binary: boolean, offset: number | undefined): boolean {
    if (!this.held) return false;
    this.held.push({ frame, binary, offset });
    return true;
  }

  /**
   * Ends recovery: returns the held events still to write, those after offset `last` (the last
   * one written from history) and those without an offset, in arrival order.
   */
  release(last: number): HeldEvent[] {
    const held = this.held ?? [];
    this.held = undefined;
    return held.filter((e) => e.offset === undefined || e.offset > last);
  }

  /**
   * Starts the presence join with `announce`; resolves whether it succeeded. A failed join (Redis
   * down) is reported to `onFailure`, not thrown: the subscription stands and local delivery goes on.
   */
  join(announce: () => Promise<void>, onFailure: (err: unknown) => void): Promise<boolean> {
    this.joined = announce().then(
      () => true,
      (err: unknown) => {
        onFailure(err);
        return false;
      },
    );
    return this.joined;
  }

  /** Withdraws the presence member with `withdraw`, once the join is done and only if it succeeded. */
  async leave(withdraw: () => Promise<void>): Promise<void> {
    if (!this.joined || !(await this.joined)) return;
    await withdraw();
  }
}
