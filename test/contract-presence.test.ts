import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { MemoryPresence } from '@herald/server';
import { RedisMembership, RedisPresence, createRedisClients } from '@herald/server/redis';
import { startRedis, type TestRedis } from './helpers/index.js';
import { presenceContract } from './helpers/contract-presence.js';

presenceContract('memory', async () => {
  const presence = new MemoryPresence();
  return { presence, close: () => presence.close() };
});

describe('Redis presence contract (redis-server)', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  presenceContract('redis', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const { publisher, subscriber } = createRedisClients(redis.url);
    subscriber.disconnect();
    if (publisher.status !== 'ready') await once(publisher, 'ready');
    const membership = new RedisMembership(publisher, { nodeId: 'n1', prefix });
    const presence = new RedisPresence(publisher, { membership, prefix });
    membership.start();
    presence.start();
    await membership.refresh();
    return {
      presence,
      close: async () => {
        await presence.close();
        publisher.disconnect();
      },
    };
  });
});
