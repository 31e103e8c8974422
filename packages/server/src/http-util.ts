import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_MAX_JSON_DEPTH, exceedsJsonDepth } from '@herald/protocol';

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Error raised while reading a request body. */
export class BodyError extends Error {
  override name = 'BodyError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * Reads a JSON request body of at most `limit` bytes, nested no deeper than `maxDepth`
 * (checked before parsing, as on `/ws`: a hostile body costs no object tree, and no later walk
 * over it can run out of stack).
 */
export async function readJsonBody(req: IncomingMessage, limit: number, maxDepth = DEFAULT_MAX_JSON_DEPTH): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyError(413, `body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (exceedsJsonDepth(text, maxDepth)) throw new BodyError(400, `JSON nested deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError(400, 'invalid JSON body');
  }
}
