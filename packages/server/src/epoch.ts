import { randomBytes } from 'node:crypto';

/**
 * A fresh history stream epoch: 8 random base64url characters, never reused in practice. The
 * one generator of both brokers (the Redis one passes a candidate to its Lua scripts, which keep
 * it only when the stream is new).
 */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}
