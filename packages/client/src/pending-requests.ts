import type { AckFrame } from '@herald/protocol';
import type { Operation } from './operation.js';

/** Operations sent on the current transport and waiting for their `ack` or `error`, by id. */
export class PendingRequests {
  readonly #byId = new Map<number, Operation>();

  /** Number of requests in flight. */
  get size(): number {
    return this.#byId.size;
  }

  /** Registers an operation that has just been sent. */
  add(op: Operation & { id: number }): void {
    this.#byId.set(op.id, op);
  }

  /** Forgets `id` (its timeout fired). */
  delete(id: number): void {
    this.#byId.delete(id);
  }

  /** Resolves the request that `ack` answers; false when none waits (late or unknown ack). */
  resolve(ack: AckFrame): boolean {
    const op = this.#byId.get(ack.id);
    if (!op) return false;
    this.#byId.delete(ack.id);
    clearTimeout(op.timer);
    op.resolve(ack);
    return true;
  }

  /** Rejects request `id` with `error`; false when none waits. */
  reject(id: number, error: Error): boolean {
    const op = this.#byId.get(id);
    if (!op) return false;
    this.#byId.delete(id);
    clearTimeout(op.timer);
    op.reject(error);
    return true;
  }

  /** Rejects every request in flight (the transport closed: their outcome is unknown). */
  rejectAll(error: () => Error): void {
    const ops = [...this.#byId.values()];
    this.#byId.clear();
    for (const op of ops) {
      clearTimeout(op.timer);
      op.reject(error());
    }
  }
}
