export * from './codes.js';
export * from './channel.js';
export * from './messages.js';
export * from './decode.js';
export * from './json-depth.js';
export * from './encode.js';
export * from './binary.js';
export * from './subprotocol.js';
