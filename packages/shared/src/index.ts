export * from './logger.js';
export * from './errors/config-error.js';
export * from './client-address.js';
export * from './ip-limit.js';
export * from './redis-keys.js';
export * from './node-record.js';
export * from './listen-failure.js';
