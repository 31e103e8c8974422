/**
 * Rendezvous (highest random weight) hashing.
 *
 * Every (key, worker) pair gets a pseudo-random weight; a key goes to the worker with the highest
 * weight. Removing a worker therefore moves only the keys whose winner it was (each of them to its
 * runner-up), and adding one takes about 1/N of the keys from the others — unlike `hash % N`, where
 * almost every key moves. Pure functions, no state: the balancer calls {@link pickWorker} with the
 * currently healthy workers on every request.
 *
 * @see Thaler & Ravishankar, "A Name-Based Mapping Scheme for Rendezvous" (1996)
 */

const encoder = new TextEncoder();

/**
 * MurmurHash3 (x86, 32-bit) of a string's UTF-8 bytes. Chosen for its avalanche: FNV-1a alone
 * gives visibly uneven rendezvous weights for keys that differ only in their last characters
 * (`user-1`, `user-2`, …), which is exactly what session ids often look like.
 *
 * @param text - the string to hash
 * @param seed - 32-bit seed
 * @returns an unsigned 32-bit hash
 */
export function murmur3(text: string, seed = 0): number {
  const bytes = encoder.encode(text);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    let k = bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // Tail: the last 1–3 bytes (the reference implementation's fall-through switch, unrolled).
  const tail = blocks << 2;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[tail + 2]! << 16;
    if (rest >= 2) k ^= bytes[tail + 1]! << 8;
    k ^= bytes[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  return fmix32(h);
}

/** Murmur3 finaliser: spreads every input bit over the whole word. */
function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The rendezvous weight of `key` on the worker named `workerId`: the key hashed with a seed
 * derived from the worker id, so every worker ranks keys independently.
 *
 * @param key - the sticky key (session id, cookie value, client address, …)
 * @param workerId - a stable worker identity; the balancer uses the worker's `host:port`
 * @returns an unsigned 32-bit weight
 */
export function weight(key: string, workerId: string): number {
  return murmur3(key, murmur3(workerId, 0x9747b28c));
}

/**
 * Workers ordered by their weight for `key`, best first (ties broken by id so the order is
 * total and the same on every balancer instance). The balancer walks this list when the first
 * choice refuses the connection.
 *
 * @param key - the sticky key
 * @param workerIds - candidate worker ids
 * @returns a new array, best first
 */
export function rankWorkers(key: string, workerIds: readonly string[]): string[] {
  return workerIds
    .map((id) => ({ id, w: weight(key, id) }))
    .sort((a, b) => b.w - a.w || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((entry) => entry.id);
}

/**
 * The worker for `key`: the one with the highest weight.
 *
 * @param key - the sticky key
 * @param workerIds - candidate (healthy) worker ids
 * @returns the chosen id, or `undefined` when there is no candidate
 */
export function pickWorker(key: string, workerIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const id of workerIds) {
    const w = weight(key, id);
    if (w > bestWeight || (w === bestWeight && best !== undefined && id < best)) {
      best = id;
      bestWeight = w;
    }
  }
  return best;
}
