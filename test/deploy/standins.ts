import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runShell } from './exec.js';

/**
 * Stand-ins for the registry images the compose file and the Dockerfile name (node:20-…,
 * redis:7…, nginx:…), which cannot be pulled on the test machine: Debian bookworm from
 * debootstrap, plus this machine's Node, Debian's redis-server or nginx, each tagged with the
 * exact name it replaces and started the way that image starts (see standins/*.Dockerfile).
 *
 * Everything is cached in the daemon's persistent data root and labelled with a hash of what
 * built it (`org.herald.standin`): a run whose inputs did not change builds nothing.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const FILES = join(HERE, 'standins');
const LABEL = 'org.herald.standin';
const SUITE = 'bookworm';
const VARIANT = 'minbase';
const MIRROR = process.env.HERALD_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
/** The CA bundle this machine trusts; the node stand-in trusts it too (see node.Dockerfile). */
const CA_BUNDLE = process.env.HERALD_STANDIN_CA || '/etc/ssl/certs/ca-certificates.crt';

export type StandinKind = 'node' | 'redis' | 'nginx';

/** Which stand-in replaces an image name, by its repository (`node`, `redis`, `nginx`). */
export function standinKind(image: string): StandinKind {
  const repo = image.split(':')[0].replace(/^(docker\.io\/)?(library\/)?/, '');
  if (repo === 'node' || repo === 'redis' || repo === 'nginx') return repo;
  throw new Error(`no stand-in for the image ${image}: add one to test/deploy/standins`);
}

function hash(...parts: Array<string | Buffer>): string {
  const h = createHash('sha256');
  for (const part of parts) h.update(part).update('\0');
  return h.digest('hex').slice(0, 16);
}

function nodePrefix(): string {
  return join(dirname(process.execPath), '..');
}

/** What the node stand-in is made of; part of its key, so a Node upgrade on the machine rebuilds it. */
function nodeFingerprint(): string {
  const prefix = nodePrefix();
  const npm = JSON.parse(readFileSync(join(prefix, 'lib/node_modules/npm/package.json'), 'utf8')) as { version: string };
  return `${process.version} ${statSync(process.execPath).size} npm ${npm.version} ${hash(readFileSync(CA_BUNDLE))}`;
}

async function labelOf(env: NodeJS.ProcessEnv, image: string): Promise<string | undefined> {
  const result = await run('docker', ['image', 'inspect', '--format', `{{index .Config.Labels "${LABEL}"}}`, image], { env, allowFail: true });
  return result.code === 0 ? result.stdout.trim() : undefined;
}

/** The debootstrap'd bookworm, imported once as `herald-standin/bookworm:<key>`. */
async function ensureBase(env: NodeJS.ProcessEnv, cacheDir: string, say: (line: string) => void): Promise<string> {
  const key = hash(SUITE, VARIANT, 'apt-clean-1');
  const tag = `herald-standin/${SUITE}:${key}`;
  if ((await labelOf(env, tag)) === key) return tag;
  const started = Date.now();
  // A run killed during debootstrap leaves its half-made rootfs behind.
  for (const entry of readdirSync(cacheDir)) if (entry.startsWith('rootfs-')) rmSync(join(cacheDir, entry), { recursive: true, force: true });
  const rootfs = mkdtempSync(join(cacheDir, 'rootfs-'));
  try {
    await run('debootstrap', ['--variant', VARIANT, SUITE, rootfs, MIRROR], { log: 'debootstrap.log' });
    // Like the registry's Debian images: no package lists or archives baked in.
    await runShell(`rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/archives/*.deb`);
    await runShell(`tar -C "${rootfs}" -c . | docker import --change 'LABEL ${LABEL}=${key}' --change 'CMD ["bash"]' - ${tag}`, { env, log: 'standins.log' });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  say(`stand-ins: debootstrap ${SUITE} (${VARIANT}) imported as ${tag} in ${Math.round((Date.now() - started) / 1000)} s`);
  return tag;
}

/** Copies what `docker build` needs for one stand-in into a fresh context directory. */
function context(kind: StandinKind): string {
  const dir = mkdtempSync(join(tmpdir(), `herald-standin-${kind}-`));
  for (const file of [`${kind}.Dockerfile`, `${kind}-entrypoint.sh`]) cpSync(join(FILES, file), join(dir, file));
  if (kind === 'node') {
    // The official image's layout: node, npm and the headers under /usr/local.
    const prefix = nodePrefix();
    const local = join(dir, 'usr/local');
    mkdirSync(join(local, 'bin'), { recursive: true });
    cpSync(process.execPath, join(local, 'bin/node'));
    cpSync(join(prefix, 'lib/node_modules/npm'), join(local, 'lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
    const headers = join(prefix, 'include/node');
    if (!existsSync(join(headers, 'node_api.h'))) throw new Error(`no Node headers at ${headers}: the image build compiles the native relay against them`);
    cpSync(headers, join(local, 'include/node'), { recursive: true });
    cpSync(CA_BUNDLE, join(local, 'share/herald-standin/ca-certificates.crt'));
  }
  return dir;
}

function filesKey(kind: StandinKind): string {
  return hash(readFileSync(join(FILES, `${kind}.Dockerfile`)), readFileSync(join(FILES, `${kind}-entrypoint.sh`)), kind === 'node' ? nodeFingerprint() : '');
}

/**
 * Makes sure every image in `images` exists in the daemon as an up-to-date stand-in; builds the
 * missing or outdated ones. Returns what it did, one line per image.
 */
export async function ensureStandins(env: NodeJS.ProcessEnv, cacheDir: string, images: string[], say: (line: string) => void): Promise<void> {
  let base: string | undefined;
  for (const image of [...new Set(images)]) {
    const kind = standinKind(image);
    base ??= await ensureBase(env, cacheDir, say);
    const key = hash(base, filesKey(kind));
    if ((await labelOf(env, image)) === key) {
      say(`stand-ins: ${image} cached (${key})`);
      continue;
    }
    const started = Date.now();
    const dir = context(kind);
    try {
      await run('docker', ['build', '--quiet', '--build-arg', `BASE=${base}`, '--label', `${LABEL}=${key}`, '-f', join(dir, `${kind}.Dockerfile`), '-t', image, dir], { env, log: 'standins.log' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    say(`stand-ins: built ${image} (${kind}) in ${Math.round((Date.now() - started) / 1000)} s`);
  }
}
