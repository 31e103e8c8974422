import type { PresenceMember } from '@herald/protocol';
import type { PresenceEvent } from './broker.js';
import type { Presence } from './presence.js';
import { toUnavailable, type RedisCommandClient } from './redis-client.js';
import { RedisKeys, type Logger } from '@herald/shared';
import type { RedisMembership } from './redis-membership.js';
import { RedisScript } from './redis-script.js';
import { BrokerUnavailableError } from './errors/broker-unavailable-error.js';

/** KEYS: channel hash, node set. ARGV: conn, `<node>\n<user JSON>`, channel. */
const ADD = new RedisScript(
  `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3] .. '\\n' .. ARGV[1])
return 1`,
  2,
);

/** KEYS: channel hash, node set. ARGV: conn, channel, node. Only removes this node's entry. */
const REMOVE = new RedisScript(
  `local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[3] + 1) == ARGV[3] .. '\\n' then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[2] .. '\\n' .. ARGV[1])
return 1`,
  2,
);

/**
 * One read: the channel's members whose node holds a current lease (no ghosts of dead nodes
 * between their lease expiry and the sweep). KEYS: channel hash, nodes zset. ARGV: now.
 * Returns a flat list `conn, user JSON, …`.
 */
const MEMBERS = new RedisScript(
  `local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local nl = string.find(v, '\\n', 1, true)
  if nl then
    local node = string.sub(v, 1, nl - 1)
    local ok = alive[node]
    if ok == nil then
      local s = redis.call('ZSCORE', KEYS[2], node)
      ok = (s and tonumber(s) > tonumber(ARGV[1])) and true or false
      alive[node] = ok
    end
    if ok then
      out[#out + 1] = all[i]
      out[#out + 1] = string.sub(v, nl + 1)
    end
  end
end
return out`,
  2,
);

/**
 * Takes the sweep lock and lists nodes whose lease expired.
 * KEYS: lock, nodes. ARGV: me, lock ms, now, limit.
 */
const EXPIRED_NODES = new RedisScript(
  `if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {} end
return redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3], 'LIMIT', 0, ARGV[4])`,
  2,
);

/** KEYS: lock. ARGV: me. */
const UNLOCK = new RedisScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\nreturn 1`, 1);

/**
 * Lua shared by the sweep scripts: pops up to `batch` entries of node ARGV[1] from the set
 * `set`, removes each from its channel's hash (when it is still this node's) and publishes its
 * `leave` envelope on the channel. `scope` is the Lua expression of the names' prefix: the key
 * prefix on one Redis, prefix + partition tag on a cluster (the names of RedisKeys).
 */
function popAndLeave(set: string, batch: string, scope: string): string {
  return `local entries = redis.call('SPOP', ${set}, tonumber(${batch}))
local tag = ARGV[1] .. '\\n'
for _, e in ipairs(entries) do
  local nl = string.find(e, '\\n', 1, true)
  local channel = string.sub(e, 1, nl - 1)
  local conn = string.sub(e, nl + 1)
  local key = ${scope} .. 'p:' .. channel
  local v = redis.call('HGET', key, conn)
  if v and string.sub(v, 1, #tag) == tag then
    redis.call('HDEL', key, conn)
    local user = string.sub(v, #tag + 1)
    redis.call('PUBLISH', ${scope} .. 'ch:' .. channel,
      '{"t":"e","n":' .. cjson.encode(ARGV[1]) .. ',"e":{"kind":"leave","channel":' .. cjson.encode(channel) ..
      ',"user":' .. user .. ',"conn":' .. cjson.encode(conn) .. '}}\\n')
  end
end`;
}

/**
 * Removes up to ARGV[3] presence entries of node ARGV[1] and publishes a `leave` for each,
 * in one atomic step (so two sweepers never announce the same leave). Without force, does
 * nothing for a node whose lease is current again, and drops the node's records once its set
 * is empty. Returns 1 while entries remain, 0 when done, -1 when the node is alive.
 * KEYS: nodes, node set, node record. ARGV: node, now, batch, prefix, force ('1'/'0').
 */
const SWEEP = new RedisScript(
  `local force = ARGV[5] == '1'
if not force then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if s and tonumber(s) > tonumber(ARGV[2]) then return -1 end
end
${popAndLeave('KEYS[2]', 'ARGV[3]', 'ARGV[4]')}
if redis.call('SCARD', KEYS[2]) > 0 then return 1 end
if not force then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
end
return 0`,
  3,
);

/**
 * Redis Cluster: the channel's members, unfiltered (the node leases live in another slot).
 * KEYS: channel hash. Returns a flat list `conn, <node>\n<user JSON>, …`.
 */
const MEMBERS_RAW = new RedisScript(`return redis.call('HGETALL', KEYS[1])`, 1);

/** Redis Cluster: ids of nodes with a current lease. KEYS: nodes. ARGV: now. */
const LIVE_NODES = new RedisScript(`return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')`, 1);

/** Redis Cluster: 1 when the node's lease is current. KEYS: nodes. ARGV: node, now. */
const NODE_ALIVE = new RedisScript(`local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\nif s and tonumber(s) > tonumber(ARGV[2]) then return 1 end\nreturn 0`, 1);

/**
 * Redis Cluster: drops a swept node's lease and record unless it is current again.
 * KEYS: nodes, node record. ARGV: node, now.
 */
const FORGET_NODE = new RedisScript(
  `local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > tonumber(ARGV[2]) then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 0`,
  2,
);

/**
 * Redis Cluster: {@link SWEEP} for one partition of a node's entries (they and the channels they
 * name share the partition's slot), without the lease check (done by the caller per partition).
 * KEYS: the node's set of that partition. ARGV: node, batch, scope (prefix + hash tag).
 * Returns 1 while entries remain, 0 when done.
 */
const SWEEP_PART = new RedisScript(
  `${popAndLeave('KEYS[1]', 'ARGV[2]', 'ARGV[3]')}
if redis.call('SCARD', KEYS[1]) > 0 then return 1 end
return 0`,
  1,
).sharded();

/** Options of {@link RedisPresence}. */
export interface RedisPresenceOptions {
  /** The node's membership: its lease keeps this node's entries alive. */
  membership: RedisMembership;
  /** Key prefix. @default "herald:" */
  prefix?: string;
  /**
   * Hash-tag partitions on a Redis Cluster (docs/cluster.md): a node's entry set is split by
   * partition, listing and sweeping take one call per slot. @default undefined (one Redis)
   */
  partitions?: number;
  /**
   * Publishes presence events this store has to produce itself: `join`s when entries are
   * restored after the lease was lost, `leave`s of removals retried after an outage.
   */
  announce?: (event: PresenceEvent) => Promise<unknown>;
  /** How often expired nodes are looked for, in ms. @default min(2000, lease / 4) */
  sweepIntervalMs?: number;
  /** Entries removed per sweep script call. @default 500 */
  sweepBatch?: number;
  /** Clock. @default Date.now */
  now?: () => number;
  log?: Logger;
}

type Entry = { channel: string; member: PresenceMember };

/**
 * Presence in Redis, tied to worker leases (SPEC §5). Per channel a hash `conn -> <node>\n<user>`,
 * per node a set of its entries. `members` is one script call that skips entries of nodes
 * without a current lease. Any live node sweeps expired nodes (under a short lock): it removes
 * their entries and publishes their `leave` events, so a SIGKILLed worker's members are gone
 * within lease + sweep interval (< 15 s with the defaults).
 */
export class RedisPresence implements Presence {
  private readonly keys: RedisKeys;
  private readonly nodeId: string;
  private readonly now: () => number;
  private readonly log?: Logger;
  private readonly interval: number;
  private readonly batch: number;
  /** This node's entries, to restore them after a lost lease. */
  private readonly local = new Map<string, Map<string, PresenceMember>>();
  /** Removals that failed (Redis down); retried until they succeed, so they leave no ghost. */
  private readonly stale = new Map<string, Entry>();
  private readonly pending = new Set<Promise<unknown>>();
  private timer?: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;
  /** Cleanup of entries a previous process with the same node id left behind. */
  private initial?: Promise<void>;
  private initialDone = false;
  private readonly onReady = () => void this.sweep();

  constructor(private readonly client: RedisCommandClient, private readonly options: RedisPresenceOptions) {
    this.keys = new RedisKeys(options.prefix, options.partitions);
    this.nodeId = options.membership.nodeId;
    this.now = options.now ?? Date.now;
    this.log = options.log;
    this.interval = options.sweepIntervalMs ?? Math.min(2000, Math.floor(options.membership.leaseMs / 4));
    this.batch = options.sweepBatch ?? 500;
  }

  /** Starts sweeping; first removes entries left by an earlier process with this node id. */
  start(): void {
    if (this.timer || this.closed) return;
    const tick = () => {
      void this.sweep();
      // Jitter, so nodes started together do not all contend for the lock at once.
      this.timer = setTimeout(tick, this.interval * (0.75 + Math.random() / 2));
      this.timer.unref();
    };
    this.timer = setTimeout(tick, this.interval / 2);
    this.timer.unref();
    this.client.on('ready', this.onReady);
    if (this.client.status === 'ready') this.onReady();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.then(
      () => this.pending.delete(p),
      () => this.pending.delete(p),
    );
    return p;
  }

  async add(channel: string, member: PresenceMember): Promise<void> {
    if (this.closed) throw new BrokerUnavailableError('presence is closed');
    let members = this.local.get(channel);
    if (!members) this.local.set(channel, (members = new Map()));
    members.set(member.conn, { user: member.user, conn: member.conn });
    this.stale.delete(`${channel}\n${member.conn}`);
    try {
      await this.track(this.addRemote(channel, member));
    } catch (err) {
      this.forget(channel, member.conn);
      throw toUnavailable(err, 'presence add', this.log);
    }
  }

  private async addRemote(channel: string, member: PresenceMember): Promise<void> {
    // Adds wait for the startup cleanup, which must not remove entries of this process.
    if (this.initial && !this.initialDone) await this.initial.catch(() => undefined);
    await ADD.run(this.client, [this.keys.presence(channel), this.keys.nodePresence(this.nodeId, this.keys.scope(channel)), member.conn, `${this.nodeId}\n${JSON.stringify(member.user)}`, channel]);
  }

  private forget(channel: string, conn: string): boolean {
    const members = this.local.get(channel);
    const had = members?.delete(conn) ?? false;
    if (members?.size === 0) this.local.delete(channel);
    return had;
  }

  async remove(channel: string, member: PresenceMember): Promise<void> {
    this.forget(channel, member.conn);
    if (this.closed) return;
    try {
      await this.track(this.removeRemote(channel, member.conn));
    } catch (err) {
      this.stale.set(`${channel}\n${member.conn}`, { channel, member: { user: member.user, conn: member.conn } });
      throw toUnavailable(err, 'presence remove', this.log);
    }
  }

  private async removeRemote(channel: string, conn: string): Promise<void> {
    await REMOVE.run(this.client, [this.keys.presence(channel), this.keys.nodePresence(this.nodeId, this.keys.scope(channel)), conn, channel, this.nodeId]);
  }

  async members(channel: string): Promise<PresenceMember[]> {
    let flat: string[];
    try {
      flat = this.keys.clustered ? await this.clusterMembers(channel) : ((await MEMBERS.run(this.client, [this.keys.presence(channel), this.keys.nodes, this.now()])) as string[]);
    } catch (err) {
      throw toUnavailable(err, 'presence query', this.log);
    }
    const out: PresenceMember[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      let user: string | null = null;
      try {
        user = JSON.parse(flat[i + 1]!) as string | null;
      } catch {
        continue;
      }
      out.push({ user, conn: flat[i]! });
    }
    return out;
  }

  /**
   * {@link MEMBERS} on a Redis Cluster: the channel's hash and the live nodes are in different
   * slots, so they are two reads (one round trip, pipelined) and the filter runs here.
   */
  private async clusterMembers(channel: string): Promise<string[]> {
    const [all, live] = (await Promise.all([MEMBERS_RAW.run(this.client, [this.keys.presence(channel)]), LIVE_NODES.run(this.client, [this.keys.nodes, this.now()])])) as [string[], string[]];
    const alive = new Set(live);
    const out: string[] = [];
    for (let i = 0; i < all.length; i += 2) {
      const v = all[i + 1]!;
      const nl = v.indexOf('\n');
      if (nl > 0 && alive.has(v.slice(0, nl))) out.push(all[i]!, v.slice(nl + 1));
    }
    return out;
  }

  /** One sweep round: retried removals, then expired nodes (if this node gets the lock). */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.closed || this.client.status !== 'ready') return;
    this.sweeping = true;
    try {
      if (!this.initialDone) {
        this.initial = this.sweepNode(this.nodeId, true);
        await this.initial;
        this.initialDone = true;
      }
      await this.retryStale();
      const dead = (await EXPIRED_NODES.run(this.client, [this.keys.sweepLock, this.keys.nodes, this.nodeId, this.interval, this.now(), 100])) as string[];
      if (dead.length === 0) return;
      try {
        for (const id of dead) if (id !== this.nodeId) await this.sweepNode(id, false);
      } finally {
        await UNLOCK.run(this.client, [this.keys.sweepLock, this.nodeId]);
      }
    } catch (err) {
      this.log?.debug({ err: (err as Error).message }, 'presence sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepNode(id: string, force: boolean): Promise<void> {
    if (this.keys.clustered) return this.sweepNodeCluster(id, force);
    for (let round = 0; round < 10_000; round++) {
      const state = Number(await SWEEP.run(this.client, [this.keys.nodes, this.keys.nodePresence(id), this.keys.node(id), id, this.now(), this.batch, this.keys.prefix, force ? '1' : '0']));
      if (state === -1) return;
      if (state === 0) break;
    }
    if (!force) this.log?.info({ node: id }, 'swept expired node');
  }

  /**
   * {@link sweepNode} on a Redis Cluster: the node's entries are split over the partitions, each
   * swept atomically in its slot ({@link SWEEP_PART}); without force the lease is checked before
   * each partition, and the lease and record are dropped at the end unless it is current again.
   */
  private async sweepNodeCluster(id: string, force: boolean): Promise<void> {
    const alive = async () => !force && Number(await NODE_ALIVE.run(this.client, [this.keys.nodes, id, this.now()])) === 1;
    const scopes = this.keys.scopes();
    // A few partitions at a time: quick for a node with entries everywhere, gentle on Redis.
    for (let i = 0; i < scopes.length; i += 16) {
      if (await alive()) return;
      await Promise.all(
        scopes.slice(i, i + 16).map(async (scope) => {
          for (let round = 0; round < 10_000; round++) {
            if (Number(await SWEEP_PART.run(this.client, [this.keys.nodePresence(id, scope), id, this.batch, scope])) === 0) return;
          }
        }),
      );
    }
    if (force) return;
    if (Number(await FORGET_NODE.run(this.client, [this.keys.nodes, this.keys.node(id), id, this.now()])) === -1) return;
    this.log?.info({ node: id }, 'swept expired node');
  }

  private async retryStale(): Promise<void> {
    for (const [key, { channel, member }] of [...this.stale]) {
      await this.removeRemote(channel, member.conn);
      this.stale.delete(key);
      await this.options.announce?.({ kind: 'leave', channel, ...member }).catch(() => undefined);
    }
  }

  /** Re-adds this node's entries (and announces them) after other nodes swept it. */
  async restore(): Promise<void> {
    for (const [channel, members] of [...this.local]) {
      for (const member of [...members.values()]) {
        try {
          await this.addRemote(channel, member);
          await this.options.announce?.({ kind: 'join', channel, ...member });
        } catch (err) {
          this.log?.warn({ err: (err as Error).message, channel }, 'presence restore failed');
        }
      }
    }
  }

  /**
   * Stops sweeping, waits for running adds and removals, removes this node's remaining entries
   * (publishing their `leave`s) and deletes the membership records.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.client.off('ready', this.onReady);
    await Promise.allSettled([...this.pending]);
    try {
      await this.sweepNode(this.nodeId, true);
      await this.options.membership.stop();
    } catch (err) {
      // Redis is down: the lease expires and other nodes sweep this node's entries.
      this.log?.warn({ err: (err as Error).message }, 'presence cleanup on close failed; left to the lease');
    }
    this.local.clear();
  }
}
