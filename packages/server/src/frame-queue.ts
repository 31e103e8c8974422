/** What handling a frame leaves to do once its turn comes: write its answer (ack or error), if any. */
export type Answer = (() => void) | undefined | void;

/** The handling of one client frame. */
export interface FrameTask {
  /** Starts the frame's effect; returns (or resolves with) its answer. Must not throw or reject. */
  run(): Answer | Promise<Answer>;
  /**
   * True when the task may start while the tasks before it still run, provided those are
   * concurrent too: their effects are issued in order to one ordered channel (a publish goes to
   * the broker's single command connection at once), so starting them back to back keeps their
   * order. Everything else (subscribe, unsubscribe, auth) starts only after every earlier task
   * took effect.
   */
  concurrent: boolean;
}

const WAITING = 0;
const RUNNING = 1;
const DONE = 2;

interface Entry {
  task: FrameTask;
  state: typeof WAITING | typeof RUNNING | typeof DONE;
  answer?: Answer;
}

/**
 * The per-connection serial queue of frame handling (SPEC §3, order and answers): a frame's
 * effect starts after the previous frame's took effect, and answers are written in frame order,
 * whatever order their work completes in. An idle connection holds no entries (the array is made
 * on demand and dropped when empty); a frame handled synchronously on an idle queue allocates none.
 */
export class FrameQueue {
  private entries?: Entry[];
  private pumping = false;
  private stopped = false;

  /** Frames queued or running, not yet answered. */
  get size(): number {
    return this.entries?.length ?? 0;
  }

  /** Queues `task` behind every earlier one; it runs at once when nothing is pending. */
  push(task: FrameTask): void {
    if (this.stopped) return;
    if (!this.entries && !this.pumping) {
      // Fast path: nothing pending, so nothing to order behind.
      const result = task.run();
      if (!isPromise(result)) return void result?.();
      const entry: Entry = { task, state: RUNNING };
      this.entries = [entry];
      this.await(entry, result);
      return;
    }
    (this.entries ??= []).push({ task, state: WAITING });
    this.pump();
  }

  /** Runs nothing more: for a closed connection (running tasks finish, their answers are dropped). */
  stop(): void {
    this.stopped = true;
    this.entries = undefined;
  }

  private await(entry: Entry, result: Promise<Answer>): void {
    result.then(
      (answer) => this.finish(entry, answer),
      () => this.finish(entry, undefined), // tasks do not reject; never leave the queue stuck if one does
    );
  }

  private finish(entry: Entry, answer: Answer): void {
    entry.state = DONE;
    entry.answer = answer;
    this.pump();
  }

  /** Writes the answers that are due, in order, and starts the tasks that may start. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const q = this.entries;
        if (!q || this.stopped) return;
        while (q.length > 0 && q[0]!.state === DONE) q.shift()!.answer?.();
        if (this.stopped) return;
        if (q.length === 0) {
          this.entries = undefined;
          return;
        }
        const next = startable(q);
        if (!next) return;
        next.state = RUNNING;
        const result = next.task.run();
        if (isPromise(result)) this.await(next, result);
        else {
          next.state = DONE;
          next.answer = result;
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * The first waiting entry, if it may start: at the head, or concurrent with only running (or
 * finished) concurrent entries before it.
 */
function startable(q: Entry[]): Entry | undefined {
  for (let i = 0; i < q.length; i++) {
    const e = q[i]!;
    if (e.state === WAITING) return i === 0 || e.task.concurrent ? e : undefined;
    if (!e.task.concurrent) return undefined;
  }
  return undefined;
}

function isPromise(v: unknown): v is Promise<Answer> {
  return typeof (v as Promise<unknown> | undefined)?.then === 'function';
}
