#!/usr/bin/env node
import { loadConfig } from '../config.js';
import { ConfigError, RedisAuthError, createLogger, listenFailure, loadTlsCredentials, reloadTlsOnSighup } from '@herald/shared';
import { Balancer } from '../balancer.js';
import { loadRelay } from '../data-plane.js';

let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`herald-balancer: ${error.message}\n`);
  process.exit(1);
}

const logger = createLogger(config.logLevel, { service: 'herald-balancer' }, { backlogBytes: config.logBacklogBytes });
let balancer: Balancer;
try {
  // A bad certificate or key is reported before anything else is logged (the constructor reads them again).
  if (config.tls) loadTlsCredentials(config.tls);
  balancer = new Balancer(config, logger, await loadRelay(config, logger));
} catch (error) {
  // HERALD_RELAY=native without the native relay built; an unreadable or mismatched certificate and key.
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`herald-balancer: ${error.message}\n`);
  process.exit(1);
}

// Every socket and the proxy have error listeners; anything that still escapes is a bug: log it
// as JSON and exit, so pm2 / compose restart a clean process rather than one in an unknown state.
process.on('uncaughtException', (error) => {
  logger.fatal({ err: { message: error.message, stack: error.stack } }, 'uncaught exception');
  process.exit(1);
});
process.on('unhandledRejection', (reason) => logger.error({ err: String(reason) }, 'unhandled rejection'));

// certbot's deploy hook (or `kill -HUP`) swaps the certificate without dropping a tunnel.
reloadTlsOnSighup(balancer, config.tls, logger);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainMs: config.drainMs }, 'draining');
    balancer.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: String(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}

try {
  const { port } = await balancer.start();
  const status = balancer.status();
  logger.info({ port, id: status.id, sticky: status.sticky, discovery: status.discovery, workers: status.workers.length, healthy: status.healthy, tls: status.tls.enabled }, 'listening');
  // pm2 `wait_ready` and child_process.fork parents wait for this.
  process.send?.('ready');
} catch (error) {
  // After a signal during start-up the shutdown handler owns the exit.
  if (!stopping) {
    // A taken port is a one-line fix for the operator, not a log record.
    // A wrong Redis password: one line (password redacted), not a restart loop.
    const line = error instanceof RedisAuthError ? error.message : listenFailure(error);
    if (line) process.stderr.write(`herald-balancer: ${line}\n`);
    else logger.fatal({ err: (error as Error).message }, 'cannot start');
    process.exit(1);
  }
}
