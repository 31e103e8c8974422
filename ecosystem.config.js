// pm2 ecosystem for Herald: N workers (fork mode, one port each) behind herald-balancer, which
// finds them through their membership records in Redis — `pm2 scale herald-worker N` adds
// capacity without touching the balancer. See docs/deploy.md.
//
//   npm run build && pm2 start ecosystem.config.js
//
// Every setting can be overridden from the environment of the `pm2 start` command:
//   HERALD_INSTANCES      number of workers                          (3)
//   HERALD_WORKER_PORT    port of the first worker; the next ones +1  (3001)
//   HERALD_WORKER_HOST    interface the workers bind                  (127.0.0.1: only the balancer reaches them)
//   HERALD_BALANCER_PORT  port of the balancer                        (8080)
//   REDIS_URL             Redis of the cluster                        (redis://127.0.0.1:6379)
//   HERALD_REDIS_PREFIX   key prefix shared by workers and balancer   (herald:)
//   HERALD_DRAIN_MS       graceful drain of workers and balancer      (10000)
//
// This file is an ES module (the repository is "type": "module"); pm2 require()s it, which
// Node >= 20.19 allows, and reads `apps` from the module namespace.
import { fileURLToPath } from 'node:url';

const env = process.env;
const root = fileURLToPath(new URL('.', import.meta.url));
const drainMs = Number(env.HERALD_DRAIN_MS || 10_000);
const shared = {
  REDIS_URL: env.REDIS_URL || 'redis://127.0.0.1:6379',
  HERALD_REDIS_PREFIX: env.HERALD_REDIS_PREFIX || 'herald:',
  HERALD_DRAIN_MS: String(drainMs),
  NODE_ENV: 'production',
};

/** pm2 settings both apps share. */
const common = {
  cwd: root,
  exec_mode: 'fork',
  // Both bins call process.send('ready') once they listen (the worker after announcing itself).
  wait_ready: true,
  listen_timeout: 15_000,
  // SIGTERM starts the drain (1001 to clients in paced batches); pm2 must not SIGKILL before
  // it is over.
  kill_timeout: drainMs + 5_000,
  max_restarts: 10,
  exp_backoff_restart_delay: 200,
};

export const apps = [
  {
    ...common,
    name: 'herald-worker',
    script: 'packages/server/dist/bin/herald-worker.js',
    instances: Number(env.HERALD_INSTANCES || 3),
    // Instance 0 gets PORT, instance 1 PORT+1, …; `pm2 scale` continues the sequence.
    increment_var: 'PORT',
    env: {
      ...shared,
      PORT: Number(env.HERALD_WORKER_PORT || 3001),
      HOST: env.HERALD_WORKER_HOST || '127.0.0.1',
    },
  },
  {
    ...common,
    name: 'herald-balancer',
    script: 'packages/balancer/dist/bin/herald-balancer.js',
    instances: 1,
    env: {
      ...shared,
      PORT: Number(env.HERALD_BALANCER_PORT || 8080),
      HOST: env.HERALD_BALANCER_HOST || '0.0.0.0',
    },
  },
];

export default { apps };
