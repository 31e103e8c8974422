/**
 * `@herald/server/redis`: the Redis broker, presence, history and membership (ioredis). Kept out
 * of the package's main entry so that importing `@herald/server` does not load ioredis.
 */
export * from './redis-envelope.js';
export * from './redis-client.js';
export * from './redis-cluster-client.js';
export * from './redis-script.js';
export * from './redis-broker.js';
export * from './redis-history.js';
export * from './redis-presence.js';
export * from './redis-membership.js';
export * from './redis-backends.js';
