import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { USER_ID_RE, type Identity } from './identity.js';
import { TokenError } from './errors/token-error.js';
import { ConfigError } from '@herald/shared';

/** The signature algorithms Herald accepts. `none` and every other algorithm are refused. */
export type TokenAlgorithm = 'HS256' | 'RS256' | 'ES256';

/** Keys and checks of a {@link TokenVerifier}; at least one of `secret`, `publicKey`, `jwks` is needed. */
export interface TokenVerifierOptions {
  /** Shared secret for HS256 (at least 32 bytes, RFC 7518 §3.2). */
  secret?: string | Uint8Array;
  /** An RSA (RS256) or P-256 (ES256) public key or certificate, as PEM text. */
  publicKeyPem?: string;
  /** A JSON Web Key Set of RSA / P-256 public keys; tokens pick a key with `kid`. */
  jwks?: JSONWebKeySet;
  /** Allowed clock skew for `exp` and `nbf`, in ms. @default 1000 */
  clockToleranceMs?: number;
  /** Required `iss` claim; unset = not checked. */
  issuer?: string;
  /** Required `aud` claim (one of them); unset = not checked. */
  audience?: string;
}

/** Longest token accepted, in characters: bounds the work done on garbage. @default 8192 */
export const MAX_TOKEN_LENGTH = 8192;

const globsOf = (payload: JWTPayload, claim: 'channels' | 'publish'): string[] | undefined => {
  const v = payload[claim];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 1000 || !v.every((p) => typeof p === 'string' && p.length > 0 && p.length <= 256)) {
    throw new TokenError(`claim "${claim}" must be an array of at most 1000 glob patterns`);
  }
  return v as string[];
};

/**
 * Verifies JWTs with `jose` and turns their claims into an {@link Identity}:
 * `sub` is the user, `channels` / `publish` the glob patterns the user may subscribe /
 * publish to, `exp` when the connection must end. The algorithm is chosen by the key
 * type, never by the token alone: an HS256 token is only checked against the secret and an
 * RS256/ES256 token only against public keys, which rules out algorithm-confusion attacks.
 */
export class TokenVerifier {
  /** Algorithms this verifier accepts, given its keys. */
  readonly algorithms: TokenAlgorithm[];
  private readonly secret?: Uint8Array;
  private readonly publicKey?: { key: KeyObject; alg: TokenAlgorithm };
  private readonly jwks?: ReturnType<typeof createLocalJWKSet>;
  private readonly jwksKids = new Set<string>();
  private readonly toleranceSec: number;

  constructor(private readonly options: TokenVerifierOptions) {
    const algorithms = new Set<TokenAlgorithm>();
    if (options.secret !== undefined) {
      this.secret = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
      if (this.secret.length < 32) throw new ConfigError('the HS256 secret must be at least 32 bytes (RFC 7518 §3.2)');
      algorithms.add('HS256');
    }
    if (options.publicKeyPem !== undefined) {
      let key: KeyObject;
      try {
        key = createPublicKey(options.publicKeyPem);
      } catch (err) {
        throw new ConfigError(`the public key is not a PEM public key or certificate: ${(err as Error).message}`);
      }
      const alg = algorithmOf(key);
      this.publicKey = { key, alg };
      algorithms.add(alg);
    }
    if (options.jwks !== undefined) {
      if (!Array.isArray(options.jwks.keys) || options.jwks.keys.length === 0) throw new ConfigError('the JWKS has no keys');
      try {
        this.jwks = createLocalJWKSet(options.jwks);
        for (const k of options.jwks.keys) if (typeof k.kid === 'string') this.jwksKids.add(k.kid);
      } catch (err) {
        throw new ConfigError(`invalid JWKS: ${(err as Error).message}`);
      }
      algorithms.add('RS256');
      algorithms.add('ES256');
    }
    if (algorithms.size === 0) throw new ConfigError('token verification needs a secret, a public key or a JWKS');
    this.algorithms = [...algorithms];
    this.toleranceSec = (options.clockToleranceMs ?? 1000) / 1000;
  }

  /** Extra time a token stays valid after its `exp`, in ms. */
  get clockToleranceMs(): number {
    return this.toleranceSec * 1000;
  }

  /**
   * Verifies `token` and returns the identity it carries.
   * @throws TokenError when the token is malformed, badly signed, expired or lacks a valid `sub`.
   */
  async verify(token: string): Promise<Identity> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new TokenError('invalid token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        clockTolerance: this.toleranceSec,
        issuer: this.options.issuer,
        audience: this.options.audience,
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TokenError('token expired', true);
      if (err instanceof joseErrors.JOSEError) throw new TokenError(err instanceof joseErrors.JWTClaimValidationFailed ? `invalid token: ${err.message}` : 'invalid token');
      throw new TokenError('invalid token');
    }
    if (typeof payload.sub !== 'string' || !USER_ID_RE.test(payload.sub)) {
      throw new TokenError('invalid token: "sub" must be 1-200 characters of [A-Za-z0-9_-.@:]');
    }
    const identity: Identity = { user: payload.sub, authenticated: true };
    const channels = globsOf(payload, 'channels');
    const publish = globsOf(payload, 'publish');
    if (channels) identity.channels = channels;
    if (publish) identity.publish = publish;
    if (typeof payload.exp === 'number') identity.expiresAt = payload.exp * 1000 + this.clockToleranceMs;
    return identity;
  }

  private readonly getKey: JWTVerifyGetKey = async (header, input) => {
    if (header.alg === 'HS256') {
      if (!this.secret) throw new TokenError('invalid token');
      return this.secret;
    }
    // With both a PEM key and a JWKS, a `kid` the JWKS knows picks from the JWKS; anything else tries the PEM key.
    const jwksKnowsKid = header.kid !== undefined && this.jwksKids.has(header.kid);
    if (this.publicKey && header.alg === this.publicKey.alg && !jwksKnowsKid) return this.publicKey.key;
    if (this.jwks) return this.jwks(header, input);
    throw new TokenError('invalid token');
  };
}

function algorithmOf(key: KeyObject): TokenAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new ConfigError(`unsupported public key type ${key.asymmetricKeyType}: use RSA (RS256) or P-256 (ES256)`);
}

/** Reads a JWKS file (JSON `{"keys":[…]}`). @throws ConfigError */
export function readJwksFile(path: string): JSONWebKeySet {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as JSONWebKeySet;
  } catch (err) {
    throw new ConfigError(`HERALD_JWKS_FILE ${path}: ${(err as Error).message}`);
  }
}
