/** An invalid configuration: the worker prints the message and exits with code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
