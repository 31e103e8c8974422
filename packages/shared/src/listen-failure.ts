/**
 * The one line a bin prints when it cannot listen (a taken or privileged port), instead of a
 * stack trace: what happened and how to fix it. `undefined` for any other error.
 */
export function listenFailure(error: unknown): string | undefined {
  const err = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err?.syscall !== 'listen') return undefined;
  const where = `${err.address ?? ''}:${err.port ?? '?'}`;
  if (err.code === 'EADDRINUSE') return `cannot listen on ${where}: the port is in use (EADDRINUSE); set PORT to a free port, or PORT=0 for any free one`;
  if (err.code === 'EACCES') return `cannot listen on ${where}: permission denied (EACCES; ports below 1024 need privileges); set PORT to a port ≥ 1024, or PORT=0 for any free one`;
  return `cannot listen on ${where}: ${err.code ?? err.message}`;
}
