import { SignJWT, generateKeyPair, exportSPKI, exportJWK, type JWTPayload, type CryptoKey } from 'jose';

/** A 32-byte HS256 secret for tests. */
export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

/** Signs an HS256 token for `sub` with extra claims; `expiresIn` in seconds (default 1 h). */
export function hsToken(sub: string | undefined, claims: JWTPayload = {}, { secret = TEST_SECRET, expiresIn = 3600 as number | undefined } = {}): Promise<string> {
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (sub !== undefined) jwt.setSubject(sub);
  if (expiresIn !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** An asymmetric key pair with its public half as PEM and as a JWK (`kid` set). */
export interface TestKeyPair {
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicPem: string;
  publicJwk: Record<string, unknown>;
  kid: string;
  /** Signs a token for `sub` with this key (1 h expiry). */
  sign(sub: string, claims?: JWTPayload): Promise<string>;
}

/** Generates an RS256 or ES256 key pair. */
export async function testKeyPair(alg: 'RS256' | 'ES256', kid = `${alg.toLowerCase()}-key`): Promise<TestKeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    alg,
    privateKey,
    publicPem: await exportSPKI(publicKey),
    publicJwk,
    kid,
    sign: (sub, claims = {}) =>
      new SignJWT({ ...claims }).setProtectedHeader({ alg, kid }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(privateKey),
  };
}
