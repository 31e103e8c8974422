import { createHash } from 'node:crypto';
import type { RedisCommandClient } from './redis-client.js';

type Arg = string | Buffer | number;

/**
 * A Lua script run with EVALSHA, falling back to EVAL when Redis does not have it cached
 * (first use, or after a restart flushed the script cache).
 */
export class RedisScript {
  readonly sha: string;

  /** @param numKeys how many of the arguments are keys (they come first). */
  constructor(readonly lua: string, readonly numKeys: number) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  private shardedVariant?: RedisScript;

  /**
   * The script for a Redis Cluster: every `PUBLISH` becomes `SPUBLISH` (sharded pub/sub; the
   * channel must hash to the slot of the script's keys, which the key layout guarantees).
   */
  sharded(): RedisScript {
    this.shardedVariant ??= new RedisScript(this.lua.replaceAll("redis.call('PUBLISH'", "redis.call('SPUBLISH'"), this.numKeys);
    return this.shardedVariant;
  }

  /** This script, or its {@link sharded} variant when `clustered`. */
  on(clustered: boolean): RedisScript {
    return clustered ? this.sharded() : this;
  }

  /** Runs the script; bulk replies are strings. */
  run(client: RedisCommandClient, args: Arg[]): Promise<unknown> {
    return client.evalsha(this.sha, this.numKeys, ...args).catch((err: Error) => {
      if (!isNoScript(err)) throw err;
      return client.eval(this.lua, this.numKeys, ...args);
    });
  }

  /** Runs the script; bulk replies are Buffers (for binary payloads). */
  runBuffer(client: RedisCommandClient, args: Arg[]): Promise<unknown> {
    return client.evalshaBuffer(this.sha, this.numKeys, ...args).catch((err: Error) => {
      if (!isNoScript(err)) throw err;
      return client.evalBuffer(this.lua, this.numKeys, ...args);
    });
  }
}

function isNoScript(err: Error): boolean {
  return typeof err?.message === 'string' && err.message.startsWith('NOSCRIPT');
}
