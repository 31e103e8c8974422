import { RedisKeys } from './redis-keys.js';

/**
 * The Redis envelope of an admin command (`{"t":"c","n":<sender>,"c":<command>}` and a line feed;
 * the whole envelope format is in @herald/server's redis-envelope.ts). It lives here because a
 * process that is not a worker sends commands too: a stopping herald-balancer asks the workers
 * to drain its connections. The worker's encoder uses this function for its own commands, so
 * workers cannot tell the two senders apart.
 *
 * @param sender - id of the sender, written where a worker writes its node id
 * @param command - a JSON command with a `kind` (the worker's `AdminCommand` union)
 */
export function encodeCommandEnvelope(sender: string, command: { kind: string; [field: string]: unknown }): Buffer {
  return Buffer.from(`${JSON.stringify({ t: 'c', n: sender, c: command })}\n`);
}

/** The one Redis command {@link publishCommand} needs; an ioredis client (or Cluster) fits. */
export interface CommandPublisher {
  publish(channel: string, message: Buffer): Promise<number>;
  /** Sharded publish, used on a Redis Cluster (workers subscribe with SSUBSCRIBE there). */
  spublish?(channel: string, message: Buffer): Promise<unknown>;
}

/**
 * Sends an admin command to every worker of a deployment, on their broadcast channel.
 *
 * @param client - a connected Redis client
 * @param prefix - the deployment's `HERALD_REDIS_PREFIX`, or its {@link RedisKeys} (a Redis Cluster's)
 * @param sender - id of the sender
 * @param command - the command
 * @returns how many subscribers received it (one per worker connected to Redis)
 */
export function publishCommand(client: CommandPublisher, prefix: string | RedisKeys, sender: string, command: { kind: string; [field: string]: unknown }): Promise<number> {
  const keys = typeof prefix === 'string' ? new RedisKeys(prefix) : prefix;
  const envelope = encodeCommandEnvelope(sender, command);
  if (!keys.clustered) return client.publish(keys.broadcast, envelope);
  if (!client.spublish) throw new Error('publishCommand: a Redis Cluster needs a client with spublish');
  return client.spublish(keys.broadcast, envelope).then(Number);
}
