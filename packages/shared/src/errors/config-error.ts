/** An invalid configuration: a Herald bin (worker or balancer) prints the message and exits with code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
