export * from './wait.js';
export * from './ports.js';
export * from './child.js';
export * from './redis.js';
export * from './worker.js';
export * from './ws-client.js';
export * from './in-process.js';
