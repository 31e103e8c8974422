import type { StreamPosition } from '@herald/protocol';
import type { ChannelMessage, HistoryPolicy } from './broker.js';
import type { History, Recovery } from './history.js';
import { newEpoch } from './epoch.js';
import { toUnavailable, type RedisCommandClient } from './redis-client.js';
import { decodeEnvelope } from './redis-envelope.js';
import { RedisKeys, type Logger } from '@herald/shared';
import { RedisScript } from './redis-script.js';

/** Reads the stream meta hash, creating an empty stream under a fresh epoch when missing. */
const ENSURE_STREAM = `
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
`;

/**
 * Appends a message and publishes it, atomically (SPEC §5): the position prefix is written
 * here, so the stored entry and the published envelope are the same bytes.
 * KEYS: meta, list. ARGV: pub/sub channel, envelope, size, ttl ms, candidate epoch, deadline.
 *
 * The deadline (ms since the epoch) fences a publish whose sender has given up: a script that
 * runs later — Redis was frozen with the command in its input buffer, and the worker answered
 * `unavailable` when its command timeout passed — refuses and returns `{-1}`, so that publish
 * reaches nobody instead of some (all or none, issue 12; docs/cluster.md).
 */
export const APPEND_AND_PUBLISH = new RedisScript(
  `
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[6]) then return {-1} end
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e)
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local entry = '@' .. o .. ':' .. e .. ' ' .. ARGV[2]
redis.call('RPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], entry)
return {o, e}
`,
  2,
);

/** KEYS: meta, list. ARGV: candidate epoch, ttl ms of a new empty stream. */
const POSITION = new RedisScript(`${ENSURE_STREAM}\nreturn {o, e}`, 2);

/**
 * Position plus the retained entries after `since`, in one read.
 * KEYS: meta, list. ARGV: candidate epoch, ttl ms, since epoch, since offset.
 */
const RECOVER = new RedisScript(
  `${ENSURE_STREAM}
local out = {o, e}
if e == ARGV[3] then
  local len = redis.call('LLEN', KEYS[2])
  local first = o - len + 1
  local start = tonumber(ARGV[4]) - first + 1
  if start < 0 then start = 0 end
  if start < len then
    local items = redis.call('LRANGE', KEYS[2], start, -1)
    for i = 1, #items do out[#out + 1] = items[i] end
  end
  out[#out + 1] = len
end
return out
`,
  2,
);

/** Options of {@link RedisHistory}. */
export interface RedisHistoryOptions {
  /** Key prefix. @default "herald:" */
  prefix?: string;
  /** Hash-tag partitions on a Redis Cluster (docs/cluster.md); undefined = one Redis. @default undefined */
  partitions?: number;
  /**
   * Lifetime of the epoch of a stream nobody published to yet (created when someone subscribes),
   * in ms; a publish sets the namespace's history TTL. @default 300000
   */
  emptyStreamTtlMs?: number;
  /** Epoch generator. @default random 8 characters */
  newEpoch?: () => string;
  /** Logs Redis error replies (a failed read answers `unavailable` either way). */
  log?: Logger;
}

/**
 * History kept in Redis: per channel a hash `{o, e}` (latest offset, epoch) and a list of the
 * last N entries, both expiring after the namespace's TTL. The read half of {@link RedisBroker},
 * which creates it on its command connection; appends happen in the broker's publish script
 * ({@link APPEND_AND_PUBLISH}); reads are one script call each.
 */
export class RedisHistory implements History {
  private readonly keys: RedisKeys;
  private readonly emptyTtl: number;
  private readonly epoch: () => string;
  private readonly log?: Logger;

  constructor(private readonly client: RedisCommandClient, options: RedisHistoryOptions = {}) {
    this.log = options.log;
    this.keys = new RedisKeys(options.prefix, options.partitions);
    this.emptyTtl = options.emptyStreamTtlMs ?? 300_000;
    this.epoch = options.newEpoch ?? newEpoch;
  }

  async position(channel: string): Promise<StreamPosition> {
    const [offset, epoch] = (await POSITION.run(this.client, [this.keys.historyMeta(channel), this.keys.historyList(channel), this.epoch(), this.emptyTtl]).catch(
      (err: unknown) => {
        throw toUnavailable(err, 'history position', this.log);
      },
    )) as [number, string];
    return { offset: Number(offset), epoch: String(epoch) };
  }

  async recover(channel: string, since: StreamPosition): Promise<Recovery> {
    const reply = (await RECOVER.runBuffer(this.client, [
      this.keys.historyMeta(channel),
      this.keys.historyList(channel),
      this.epoch(),
      this.emptyTtl,
      since.epoch,
      since.offset,
    ]).catch((err: unknown) => {
      throw toUnavailable(err, 'history recovery', this.log);
    })) as Array<number | Buffer>;
    const position = { offset: Number(reply[0]), epoch: String(reply[1]) };
    if (position.epoch !== since.epoch) return { messages: [], position, recovered: false };
    const len = Number(reply[reply.length - 1]);
    const messages: ChannelMessage[] = [];
    for (const entry of reply.slice(2, -1) as Buffer[]) {
      const env = decodeEnvelope(entry);
      if (env.type === 'event' && env.event.kind === 'message' && env.event.offset! > since.offset) messages.push(env.event);
    }
    const first = position.offset - len + 1;
    return { messages, position, recovered: since.offset >= first - 1 };
  }
}

/** Arguments of {@link APPEND_AND_PUBLISH} for `channel`; `deadline` in ms since the epoch. */
export function appendArgs(keys: RedisKeys, channel: string, envelope: Buffer, policy: HistoryPolicy, epoch: string, deadline: number): Array<string | Buffer | number> {
  return [keys.historyMeta(channel), keys.historyList(channel), keys.channel(channel), envelope, Math.max(1, policy.size), Math.max(1, policy.ttlMs), epoch, deadline];
}
