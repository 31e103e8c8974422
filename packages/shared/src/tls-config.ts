import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { ConfigError } from './errors/config-error.js';
import type { Logger } from './logger.js';

/**
 * The TLS variables of both bins (worker and balancer), one rule each (docs/deploy.md "TLS").
 * Both or neither of `HERALD_TLS_CERT` / `HERALD_TLS_KEY`: checked by {@link tlsFiles}.
 */
export const TlsEnv = {
  /** PEM certificate chain (leaf first) served to clients; with `HERALD_TLS_KEY` the bin speaks https/wss. Unset = plain HTTP. */
  HERALD_TLS_CERT: z.string().min(1).optional(),
  /** PEM private key of `HERALD_TLS_CERT`. Unset = plain HTTP. */
  HERALD_TLS_KEY: z.string().min(1).optional(),
  /** PEM CA bundle trusted for a `rediss://` `REDIS_URL` (a private CA); unset = the system's CAs. */
  HERALD_REDIS_CA: z.string().min(1).optional(),
} as const;

/** Where a bin's certificate and key live (`HERALD_TLS_CERT`, `HERALD_TLS_KEY`). */
export interface TlsFiles {
  /** PEM certificate chain path. */
  readonly certFile: string;
  /** PEM private key path. */
  readonly keyFile: string;
}

/** A certificate and key as read from {@link TlsFiles}, ready for `https.createServer` / `setSecureContext`. */
export interface TlsCredentials {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * @param cert - `HERALD_TLS_CERT`
 * @param key - `HERALD_TLS_KEY`
 * @returns the two paths, or undefined when neither is set (plain HTTP)
 * @throws ConfigError when only one is set
 */
export function tlsFiles(cert: string | undefined, key: string | undefined): TlsFiles | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new ConfigError(`HERALD_TLS_CERT and HERALD_TLS_KEY go together: ${cert === undefined ? 'HERALD_TLS_KEY' : 'HERALD_TLS_CERT'} is set, the other is not`);
  }
  return { certFile: cert, keyFile: key };
}

/**
 * Reads the certificate and key and checks that they make a TLS context (a key that does not
 * match the certificate, or a file that is not PEM, fails here rather than at the first client).
 *
 * @throws ConfigError naming the file or the mismatch
 */
export function loadTlsCredentials(files: TlsFiles): TlsCredentials {
  const read = (variable: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${variable} ${path}: ${(err as Error).message}`);
    }
  };
  const credentials = { cert: read('HERALD_TLS_CERT', files.certFile), key: read('HERALD_TLS_KEY', files.keyFile) };
  try {
    createSecureContext(credentials);
  } catch (err) {
    throw new ConfigError(`HERALD_TLS_CERT ${files.certFile} / HERALD_TLS_KEY ${files.keyFile}: ${(err as Error).message}`);
  }
  return credentials;
}

/** The part of a `tls.Server` (and so `https.Server`) a reload needs. */
export interface SecureContextTarget {
  setSecureContext(options: { cert: Buffer; key: Buffer }): void;
}

/**
 * Reloads the certificate and key on SIGHUP (certbot's deploy hook, `kill -HUP`): new handshakes
 * get the new pair, open connections keep theirs (nothing is dropped). A pair that fails to load
 * is logged at error and the old one stays in force.
 *
 * @param server - the https server
 * @param files - the paths to read again
 * @param log - where the outcome is logged
 * @returns a function that removes the SIGHUP handler
 */
export function reloadTlsOnSighup(server: SecureContextTarget, files: TlsFiles, log: Logger): () => void {
  const reload = () => {
    try {
      server.setSecureContext(loadTlsCredentials(files));
      log.info({ cert: files.certFile }, 'TLS certificate reloaded (SIGHUP)');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous one');
    }
  };
  process.on('SIGHUP', reload);
  return () => process.off('SIGHUP', reload);
}

/**
 * The TLS part of ioredis options for `REDIS_URL`: `rediss://` already makes ioredis speak TLS
 * (with the system's CAs); `HERALD_REDIS_CA` adds a private CA. A CA with a plain `redis://` URL
 * is a mistake (it would silently do nothing, or silently switch to TLS), so it is refused.
 *
 * @param url - `REDIS_URL`
 * @param caFile - `HERALD_REDIS_CA`
 * @returns `{ tls: { ca } }` or `{}`
 * @throws ConfigError when the CA cannot be read or the URL is not `rediss://`
 */
export function redisTlsOptions(url: string | undefined, caFile: string | undefined): { tls?: { ca: Buffer } } {
  if (caFile === undefined) return {};
  if (url === undefined || !url.startsWith('rediss://')) throw new ConfigError('HERALD_REDIS_CA needs a rediss:// REDIS_URL (TLS)');
  try {
    return { tls: { ca: readFileSync(caFile) } };
  } catch (err) {
    throw new ConfigError(`HERALD_REDIS_CA ${caFile}: ${(err as Error).message}`);
  }
}
