/**
 * Redis refused the credentials of `REDIS_URL` (WRONGPASS, NOAUTH, NOPERM) when a bin started:
 * the worker and the balancer print the message (password redacted) and exit with code 1, since
 * retrying cannot fix a wrong password. A Redis that is merely down is not this error.
 */
export class RedisAuthError extends Error {
  override name = 'RedisAuthError';
}
