import { Authenticator } from './auth.js';
import { TokenVerifier, readJwksFile } from './token-verifier.js';
import type { WorkerConfig } from './config.js';

/**
 * Builds the {@link Authenticator} a worker configuration asks for: a {@link TokenVerifier}
 * from whichever of the secret, public key and JWKS file are set (several may be), and the mode.
 * @throws ConfigError when a key is unusable or a mode other than `none` has no key.
 */
export function createAuthenticator(config: WorkerConfig): Authenticator {
  const hasKey = config.jwtSecret !== undefined || config.jwtPublicKeyPem !== undefined || config.jwksFile !== undefined;
  const verifier = hasKey
    ? new TokenVerifier({
        secret: config.jwtSecret,
        publicKeyPem: config.jwtPublicKeyPem,
        jwks: config.jwksFile ? readJwksFile(config.jwksFile) : undefined,
        clockToleranceMs: config.jwtClockToleranceMs,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      })
    : undefined;
  return new Authenticator({ mode: config.authMode, verifier, authTimeoutMs: config.authTimeoutMs });
}
