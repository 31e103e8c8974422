#!/usr/bin/env node
/**
 * herald-token: mints an HS256 development token for the HERALD_JWT_SECRET in the environment,
 * the secret a worker started with HERALD_AUTH=optional|required checks tokens against.
 *
 *   HERALD_JWT_SECRET=… herald-token --sub alice --channels 'room:*,chat:*' --ttl 1h
 *
 * Prints the token (one line) on stdout. Usage errors: one line on stderr, exit 2.
 */
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

const USAGE = `herald-token --sub USER [--channels GLOBS] [--publish GLOBS] [--ttl DURATION]

Mints an HS256 JWT signed with HERALD_JWT_SECRET (from the environment, at least 32 bytes).
  --sub USER         the user (the "sub" claim); required
  --channels GLOBS   comma-separated glob patterns the user may subscribe to ("channels" claim;
                     omitted: no restriction beyond the namespaces' rules)
  --publish GLOBS    comma-separated glob patterns the user may publish to ("publish" claim)
  --ttl DURATION     lifetime: seconds, or a number with s, m, h or d (default 1h)
  --issuer ISS       "iss" claim (for workers with HERALD_JWT_ISSUER; default from the environment)
  --audience AUD     "aud" claim (for workers with HERALD_JWT_AUDIENCE; default from the environment)
`;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
function ttlSeconds(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new Error(`--ttl must be a positive number of seconds or a number with s, m, h or d, got "${text}"`);
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

const globs = (text: string | undefined): string[] | undefined =>
  text === undefined ? undefined : text.split(',').map((g) => g.trim()).filter(Boolean);

function fail(message: string): never {
  process.stderr.write(`herald-token: ${message}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    strict: true,
    options: {
      sub: { type: 'string' },
      channels: { type: 'string' },
      publish: { type: 'string' },
      ttl: { type: 'string', default: '1h' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  fail(`${(error as Error).message} (see herald-token --help)`);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const secret = process.env.HERALD_JWT_SECRET;
if (!secret) fail('HERALD_JWT_SECRET is not set: export the secret the workers use (at least 32 bytes)');
// The worker refuses shorter secrets at start (config.ts); a token for one would never verify.
if (Buffer.byteLength(secret) < 32) fail('HERALD_JWT_SECRET must be at least 32 bytes, as the worker requires');
if (!values.sub) fail('--sub is required (see herald-token --help)');
let ttl: number;
try {
  ttl = ttlSeconds(values.ttl);
} catch (error) {
  fail((error as Error).message);
}

const claims: Record<string, unknown> = {};
const channels = globs(values.channels);
const publish = globs(values.publish);
if (channels) claims.channels = channels;
if (publish) claims.publish = publish;
const now = Math.floor(Date.now() / 1000);
const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(values.sub).setIssuedAt(now).setExpirationTime(now + ttl);
const issuer = values.issuer ?? process.env.HERALD_JWT_ISSUER;
const audience = values.audience ?? process.env.HERALD_JWT_AUDIENCE;
if (issuer) jwt.setIssuer(issuer);
if (audience) jwt.setAudience(audience);
process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
