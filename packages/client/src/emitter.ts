/** A listener for events whose payload type is `T`. */
export type Listener<T> = (value: T) => void;

/**
 * A tiny typed event emitter that runs in browsers and Node alike (no `events` import).
 * A throwing listener does not stop the others, nor the I/O callback that emitted:
 * its error is passed to `onListenerError` (by default re-thrown on a later tick, so it
 * surfaces as an uncaught error instead of corrupting the client's state).
 */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (error: unknown) => void = rethrowLater) {}

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => this.off(event, fn);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    const off = this.on(event, (value) => {
      off();
      fn(value);
    });
    return off;
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof Events>(event: K, fn: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(fn as Listener<never>);
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Calls every listener of `event` with `value`, in the order they were added. */
  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<Events[K]>)(value);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Removes every listener. */
  protected removeAllListeners(): void {
    this.#listeners.clear();
  }
}

function rethrowLater(error: unknown): void {
  setTimeout(() => {
    throw error;
  }, 0);
}
