/**
 * Requests for an HTTP fallback session that reached a worker other than its owner, and their
 * answers. They travel as node-addressed commands on the broker's node channel (like admin
 * commands, `redis-envelope.ts`): `from` and `req` let the owner answer the asking node.
 */
export type ForwardCommand =
  | { kind: 'http-emit'; session: string; frames: unknown[]; close?: boolean; from: string; req: string }
  | { kind: 'http-poll'; session: string; ack?: number; from: string; req: string };

/** The owner's answer to a {@link ForwardCommand}: the HTTP status and body to send. */
export type ForwardReply = {
  kind: 'http-reply';
  req: string;
  status: number;
  body?: string;
};

/** Whether a command's `kind` belongs to the HTTP fallback. */
export function isForwardKind(kind: unknown): boolean {
  return kind === 'http-emit' || kind === 'http-poll' || kind === 'http-reply';
}

/** Checks a forwarded request or answer field by field: it came over the network. */
export function isForwardCommand(c: unknown): c is ForwardCommand | ForwardReply {
  if (typeof c !== 'object' || c === null) return false;
  const o = c as Record<string, unknown>;
  if (typeof o.req !== 'string') return false;
  if (o.kind === 'http-reply') return typeof o.status === 'number' && (o.body === undefined || typeof o.body === 'string');
  if (typeof o.session !== 'string' || typeof o.from !== 'string') return false;
  if (o.kind === 'http-emit') return Array.isArray(o.frames);
  return o.kind === 'http-poll' && (o.ack === undefined || Number.isSafeInteger(o.ack));
}
