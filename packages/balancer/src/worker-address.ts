/**
 * Parses `host:port` (IPv6 hosts in brackets: `[::1]:3000`).
 *
 * @param value - the address
 * @returns host and port
 * @throws Error when the value is not `host:port` with a port in 1–65535
 */
export function parseWorkerAddress(value: string): { host: string; port: number } {
  const text = value.trim();
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) throw new Error(`expected host:port, got ${JSON.stringify(value)}`);
  const host = match[1]!.startsWith('[') ? match[1]!.slice(1, -1) : match[1]!;
  return { host, port };
}
