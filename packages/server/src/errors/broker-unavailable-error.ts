/** The broker cannot carry an operation across the cluster right now (Redis down or unreachable). */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
  /** Stable code for logs and error frames. */
  readonly code = 'unavailable';
}
