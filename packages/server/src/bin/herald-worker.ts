#!/usr/bin/env node
import { loadConfig } from '../config.js';
import { ConfigError, RedisAuthError, createLogger, listenFailure, loadTlsCredentials, reloadTlsOnSighup } from '@herald/shared';
import { createBackends } from '../backends.js';
import { HeraldWorker } from '../worker.js';
import { createAuthenticator } from '../auth-config.js';
import { configureWriteBatching } from '../write-coalescer.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`herald-worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { node: config.nodeId }, { backlogBytes: config.logBacklogBytes });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

  let authenticator;
  let tls;
  try {
    authenticator = createAuthenticator(config);
    tls = config.tls && loadTlsCredentials(config.tls);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`herald-worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  configureWriteBatching(config.writeBatch);
  const backends = await createBackends(config, log);
  const worker = new HeraldWorker({
    nodeId: config.nodeId,
    ...backends,
    namespaces: config.namespaces,
    authenticator,
    allowedOrigins: config.allowedOrigins,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    trustedProxies: config.trustedProxies,
    maxUpgradesPerSec: config.maxUpgradesPerSec,
    maxFragments: config.maxFragments,
    maxHeaderBytes: config.maxHeaderBytes,
    apiKey: process.env.HERALD_API_KEY || undefined,
    maxMessageBytes: config.maxMessageBytes,
    heartbeatMs: config.heartbeatMs,
    drainMs: config.drainMs,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    maxConnections: config.maxConnections,
    perMessageDeflate: config.perMessageDeflate,
    tls,
    http: config.http,
    limits: { sendBufferBytes: config.sendBufferBytes, rate: config.rate, maxJsonDepth: config.maxJsonDepth, maxFramesInFlight: config.maxFramesInFlight },
    log,
  });

  // certbot's deploy hook (or `kill -HUP`) swaps the certificate; open connections keep theirs.
  reloadTlsOnSighup(worker, config.tls, log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Backstop: a hung Redis must not keep the process past its drain budget (pm2's
    // kill_timeout and compose's stop_grace_period are set above it).
    setTimeout(() => {
      log.warn({ drainMs: config.drainMs }, 'drain budget exceeded, exiting');
      process.exit(0);
    }, config.drainMs + 1000).unref();
    log.info({ signal }, 'shutting down');
    worker.drain().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const port = await worker.listen(config.port, config.host);
  await backends.started(port);
  log.info({ port, host: config.host, broker: config.redisUrl ? 'redis' : config.redisCluster ? 'redis-cluster' : 'memory', tls: config.tls !== undefined }, 'listening');
  // pm2's wait_ready (and any parent with an IPC channel) waits for this.
  process.send?.('ready');
}

main().catch((err) => {
  // A wrong Redis password: one line (password redacted), and no restart loop hides it.
  if (err instanceof RedisAuthError) {
    process.stderr.write(`herald-worker: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`herald-worker: ${listenFailure(err) ?? `failed to start: ${(err as Error).stack ?? err}`}\n`);
  process.exit(1);
});
