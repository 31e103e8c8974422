import { randomBytes } from 'node:crypto';
import { MemoryBroker } from '@herald/server';
import { RedisBroker, createRedisClients } from '@herald/server/redis';
import { startRedis, type TestRedis } from './helpers/index.js';
import { historyContract } from './helpers/contract-history.js';

historyContract('memory', async () => {
  const broker = new MemoryBroker();
  return { broker, close: () => broker.close() };
});

describe('Redis history contract (redis-server)', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  historyContract('redis', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const clients = createRedisClients(redis.url);
    const broker = new RedisBroker(clients, { nodeId: 'n1', prefix });
    return { broker, close: () => broker.close() };
  });
});
