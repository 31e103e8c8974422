/**
 * @herald/server: the worker and its in-memory backends. The Redis backends are in
 * `@herald/server/redis`, so an app on the embedded broker never loads ioredis.
 */
export * from './broker.js';
export * from './history.js';
export * from './presence.js';
export * from './memory-broker.js';
export * from './memory-history.js';
export * from './memory-presence.js';
export * from './hub.js';
export * from './interest.js';
export * from './session.js';
export * from './transport.js';
export * from './ws-transport.js';
export * from './ws-fast-write.js';
export * from './write-coalescer.js';
export * from './frame-queue.js';
export * from './worker.js';
export * from './config.js';
export * from './namespaces.js';
export * from './identity.js';
export * from './access.js';
export * from './auth.js';
export * from './metrics.js';
export * from './drain.js';
export * from './balancer-connections.js';
export * from './backends.js';
export * from './worker-backends.js';
export * from './epoch.js';
export * from './errors/broker-unavailable-error.js';
export * from './token-verifier.js';
export * from './token-expiry.js';
export * from './auth-config.js';
export * from './origin.js';
export * from './rate-limit.js';
export * from './errors/token-error.js';
export * from './errors/frame-error.js';
export * from './http-transport.js';
export * from './http-fallback.js';
export * from './http-forward.js';
