import type { AdminCommand } from './broker.js';
import { encodeEnvelope } from './redis-envelope.js';
import { RedisKeys } from './redis-keys.js';

/** The one Redis command {@link publishCommand} needs; an ioredis client fits. */
export interface CommandPublisher {
  publish(channel: string, message: Buffer): Promise<number>;
}

/**
 * Sends an admin command to every worker of a deployment from a process that is not a worker
 * (herald-balancer asking for its connections to be drained): the same envelope on the same
 * broadcast channel as `RedisBroker.command`, so workers cannot tell the two apart.
 *
 * @param client - a connected Redis client
 * @param prefix - the deployment's `HERALD_REDIS_PREFIX`
 * @param sender - id of the sender, written where a worker writes its node id
 * @param command - the command
 * @returns how many subscribers received it (one per worker connected to Redis)
 */
export function publishCommand(client: CommandPublisher, prefix: string, sender: string, command: AdminCommand): Promise<number> {
  return client.publish(new RedisKeys(prefix).broadcast, encodeEnvelope({ type: 'command', node: sender, command }));
}
