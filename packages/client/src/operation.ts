import type { AckFrame } from '@herald/protocol';

/**
 * One request on its way: queued while offline, then in flight until its `ack` or `error`.
 * Binary publishes carry no id (the protocol has no ack for them) and settle once handed
 * to the socket.
 */
export interface Operation {
  /** The frame id the `ack`/`error` answers; absent for binary frames. */
  readonly id?: number;
  /** The encoded frame. */
  readonly data: string | Uint8Array;
  /** Settles the caller's promise with the ack (undefined for binary frames). */
  resolve(ack: AckFrame | undefined): void;
  /** Settles the caller's promise with an error. */
  reject(error: Error): void;
  /** The request timeout, cleared when the operation settles. */
  timer?: ReturnType<typeof setTimeout>;
}
