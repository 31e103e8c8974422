import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { WebSocket } from 'ws';
import { Client } from '@herald/client';
import { eventually } from './wait.js';

/** A server certificate signed by a {@link TestCa}: PEM paths and contents. */
export interface TestCert {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** The certificate's serial number, hex as openssl prints it (tells two certificates apart). */
  serial: string;
  /** base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's `--ignore-certificate-errors-spki-list`). */
  spki: string;
}

/** A throw-away CA made with `openssl` at test time, in its own temp dir. */
export interface TestCa {
  dir: string;
  caFile: string;
  /** The CA certificate (PEM): hand it to `ca:` of a Node client to trust the server certificates. */
  ca: string;
  /** A server certificate (new key each call) for `127.0.0.1`, `::1` and `localhost` (plus `names`). */
  issue(name: string, names?: string[]): TestCert;
  /** Removes the directory. */
  remove(): void;
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** base64 SHA-256 of the SPKI of a PEM certificate, computed with openssl (not with the code under test). */
export function spkiHash(certFile: string, cwd: string): string {
  const pub = execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-pubkey'], { cwd });
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { cwd, input: pub });
  return execFileSync('openssl', ['dgst', '-sha256', '-binary'], { cwd, input: der }).toString('base64');
}

/**
 * Creates a CA (EC P-256, valid one day) with `openssl`. Every TLS test uses this: nginx, the
 * balancer, the worker, redis-server's `--tls-port` and Chromium.
 */
export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'herald-tls-'));
  const caFile = join(dir, 'ca.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=Herald test CA', '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  let serial = 1;
  return {
    dir,
    caFile,
    ca: readFileSync(caFile, 'utf8'),
    issue(name, names = []) {
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.pem`);
      const san = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...names.map((n) => (/^[\d.:]+$/.test(n) ? `IP:${n}` : `DNS:${n}`))].join(',');
      writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', join(dir, `${name}.csr`)], dir);
      const hexSerial = (serial++ + Date.now() * 1000).toString(16);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${hexSerial}`, '-days', '1', '-extfile', `${name}.ext`, '-out', certFile], dir);
      const printed = openssl(['x509', '-in', certFile, '-noout', '-serial'], dir).trim().replace(/^serial=/, '');
      return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), serial: printed, spki: spkiHash(certFile, dir) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The answer of {@link httpsGet}. */
export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The server certificate's serial (hex), as the client saw it. */
  serial: string;
}

/** GET over https trusting `ca` (global fetch cannot take a CA without an extra dispatcher). */
export function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    // agent: false: a fresh TLS connection each time, so a reloaded certificate is seen.
    const req = httpsRequest(url, { ca, headers, agent: false }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, serial }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * A `ws` WebSocket class that trusts `ca`: what a Node app hands to `@herald/client` as its
 * `WebSocket` constructor to reach a wss:// server with a private CA (README of @herald/client).
 */
export function trustingWebSocket(ca: string): new (url: string, protocols?: string | string[]) => WebSocket {
  return class TrustingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { ca });
    }
  };
}

/**
 * Connects `@herald/client` (Node, `ws` trusting `ca`) to `wsUrl` (a `wss://…/ws` URL), subscribes,
 * publishes one message and waits for it to come back, then closes.
 *
 * @returns the welcome's node and the message received
 */
export async function heraldClientRoundTrip(wsUrl: string, ca: string, text: string): Promise<{ node: string; received: unknown[] }> {
  const client = new Client(wsUrl, { WebSocket: trustingWebSocket(ca), minReconnectDelay: 20, maxReconnectDelay: 200 });
  client.on('error', () => {}); // a failed attempt shows as ready() rejecting / timing out below
  try {
    client.connect();
    const welcome = await client.ready();
    const received: unknown[] = [];
    const sub = client.subscribe('room:tls', { onMessage: (m) => received.push(m.data) });
    await sub.ready();
    await client.publish('room:tls', { text });
    await eventually(() => {
      if (received.length === 0) throw new Error('no message yet');
    });
    return { node: welcome.node, received };
  } finally {
    client.close();
  }
}
