import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
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
    const { code, message } = err as NodeJS.ErrnoException;
    const why = TLS_LOAD_ERRORS[code ?? ''];
    // OpenSSL's own text stays at the end: it is what a search for the error finds.
    throw new ConfigError(`HERALD_TLS_CERT ${files.certFile} / HERALD_TLS_KEY ${files.keyFile}: ${why ? `${why} (${message})` : message}`);
  }
  return credentials;
}

/**
 * What the OpenSSL errors of a certificate/key pair that does not load mean, by Node's error code
 * (OpenSSL 3, as bundled with Node 20). Codes not listed keep OpenSSL's text alone.
 */
const TLS_LOAD_ERRORS: Readonly<Record<string, string>> = {
  ERR_OSSL_X509_KEY_VALUES_MISMATCH: 'the key is not the private key of this certificate',
  // The certificate is parsed first: this is the certificate file (a key there, or no PEM at all).
  ERR_OSSL_PEM_NO_START_LINE: 'the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
  ERR_OSSL_UNSUPPORTED: 'the key file holds no private key OpenSSL can read (PEM, -----BEGIN PRIVATE KEY----- or -----BEGIN RSA/EC PRIVATE KEY-----)',
  ERR_OSSL_BAD_DECRYPT: 'the key is encrypted with a passphrase, which Herald does not take: decrypt it once (openssl pkey -in key.pem -out key.plain.pem) and keep that file readable only by the service user',
};

/** The part of a `tls.Server` (and so `https.Server`) a reload needs. */
export interface SecureContextTarget {
  setSecureContext(options: { cert: Buffer; key: Buffer }): void;
}

/**
 * Reloads the certificate and key on SIGHUP (certbot's deploy hook, `kill -HUP`): new handshakes
 * get the new pair, open connections keep theirs (nothing is dropped). A pair that fails to load
 * is logged at error and the old one stays in force. Without TLS, SIGHUP is logged and ignored,
 * so a deploy hook that signals every Herald process on a host cannot kill a plain one (Node's
 * default for SIGHUP is to exit at once, without a drain).
 *
 * @param server - the https server
 * @param files - the paths to read again; undefined when the bin serves plain HTTP
 * @param log - where the outcome is logged
 * @returns a function that removes the SIGHUP handler
 */
export function reloadTlsOnSighup(server: SecureContextTarget, files: TlsFiles | undefined, log: Logger): () => void {
  const reload = () => {
    if (files === undefined) {
      log.info('SIGHUP ignored: no TLS certificate to reload (HERALD_TLS_CERT is unset)');
      return;
    }
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
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (err) {
    throw new ConfigError(`HERALD_REDIS_CA ${caFile}: ${(err as Error).message}`);
  }
  checkCertificates(caFile, ca);
  return { tls: { ca } };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * A CA bundle must hold at least one PEM certificate, each of which parses: a key, an empty file
 * or a DER file given by mistake would otherwise start a worker that can never reach Redis.
 */
function checkCertificates(caFile: string, ca: Buffer): void {
  const blocks = ca.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`HERALD_REDIS_CA ${caFile}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`HERALD_REDIS_CA ${caFile}: certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  }
}
