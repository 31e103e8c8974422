import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SkipError } from '../skip-error.js';

/** A throw-away self-signed certificate for `127.0.0.1`, made with `openssl` for one `--tls` run. */
export interface BenchCert {
  certFile: string;
  keyFile: string;
  /** The certificate (PEM): the load agents trust exactly it (`ca:`), nothing is left unverified. */
  ca: string;
  /** Removes its directory. */
  remove(): void;
}

/**
 * Makes the certificate both TLS servers of `proxy --tls` present (EC P-256, as a typical
 * production certificate: its handshakes are the cheap kind, so the numbers are about the record
 * layer, not RSA).
 *
 * @throws SkipError when `openssl` is not installed (the TLS rows are skipped)
 */
export function makeBenchCert(): BenchCert {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new SkipError(`cannot make a certificate with openssl: ${(err as Error).message.split('\n', 1)[0]}`);
  }
  return { certFile, keyFile, ca: readFileSync(certFile, 'utf8'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
