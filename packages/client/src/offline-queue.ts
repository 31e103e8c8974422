import type { Operation } from './operation.js';

/**
 * Requests made while the client is connecting or reconnecting, sent in order once the next
 * `welcome` arrives. Bounded so an app that keeps publishing while offline cannot grow memory
 * without limit: {@link push} refuses past `limit`.
 */
export class OfflineQueue {
  #items: Operation[] = [];

  constructor(
    /** Most operations held at once. */
    readonly limit: number,
  ) {}

  /** Number of waiting operations. */
  get size(): number {
    return this.#items.length;
  }

  /** Appends `op`; false when the queue is full. */
  push(op: Operation): boolean {
    if (this.#items.length >= this.limit) return false;
    this.#items.push(op);
    return true;
  }

  /** Removes `op` (its timeout fired); false when it was not queued. */
  remove(op: Operation): boolean {
    const i = this.#items.indexOf(op);
    if (i === -1) return false;
    this.#items.splice(i, 1);
    return true;
  }

  /** Removes and returns every operation, oldest first. */
  drain(): Operation[] {
    const items = this.#items;
    this.#items = [];
    return items;
  }
}
