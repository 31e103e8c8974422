import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { extname, join, normalize, sep } from 'node:path';
import type { ServerResponse } from 'node:http';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** The built demo app (`packages/server/dist/web`). */
const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));

/** Shown at `/` when the demo app was not built. */
const PLACEHOLDER = `<!doctype html><meta charset="utf-8"><title>Herald</title>
<h1>Herald</h1><p>This worker is running. WebSocket endpoints: <code>/ws</code> (channel protocol) and <code>/echo</code>.</p>`;

function browserBundlePath(): string | undefined {
  try {
    return fileURLToPath(import.meta.resolve('@herald/client/browser'));
  } catch {
    return undefined;
  }
}

async function sendFile(res: ServerResponse, path: string): Promise<boolean> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    return false;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-cache' });
  res.end(body);
  return true;
}

/**
 * Serves `/` (the demo app, or a placeholder), `/client.js` (the browser bundle of
 * @herald/client) and other files of the demo's build folder. Returns false when `pathname`
 * is not one of them.
 */
export async function serveStatic(pathname: string, res: ServerResponse): Promise<boolean> {
  if (pathname === '/client.js') {
    const bundle = browserBundlePath();
    return bundle ? sendFile(res, bundle) : false;
  }
  if (pathname === '/' || pathname === '/index.html') {
    if (await sendFile(res, join(WEB_DIR, 'index.html'))) return true;
    res.writeHead(200, { 'content-type': TYPES['.html']! });
    res.end(PLACEHOLDER);
    return true;
  }
  const file = normalize(join(WEB_DIR, decodeURIComponent(pathname)));
  if (!file.startsWith(WEB_DIR) || file.includes(`${sep}..`)) return false;
  return sendFile(res, file);
}
