/**
 * A real local Redis Cluster for tests (3 masters + 3 replicas by default). One implementation,
 * in the bench package (its `scale` scenario starts the same cluster); see
 * packages/bench/src/servers/redis-cluster.ts.
 */
export { RedisCluster, freeClusterPort, parseClusterNodes, type RedisClusterOptions, type ClusterNodeInfo } from '@herald/bench';
