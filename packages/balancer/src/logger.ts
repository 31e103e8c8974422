import { pino, type Logger } from 'pino';

/**
 * The balancer's logger: pino JSON lines on stdout (the `listening` line is what pm2 setups and
 * tests wait for).
 *
 * @param level - pino level @default 'info'
 * @returns a logger
 */
export function createLogger(level = 'info'): Logger {
  return pino({ level, base: { pid: process.pid, service: 'herald-balancer' } });
}
