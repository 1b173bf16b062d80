// Failed-login counters shared by all nodes through Redis (auth-counters.ts has the interface
// and the in-memory version), so guessing spread over several nodes gets no more tries than
// on one. Each key's leaky bucket is a hash (level, at, blocked) and its attempts in flight a
// sorted set of expiring entries (a node that crashes mid-login frees its places by itself);
// reserve and settle are Lua scripts, each one atomic step for all nodes, on Redis's clock.
// The interface is asynchronous for this: an attempt in flight on one node must be counted
// before another node lets the next guess through, which a local copy synced afterwards
// could not promise. When Redis is down or slow the node counts on its own (the in-memory
// counters) until it is back.
import Redis from 'ioredis';
import { AuthCounters, BucketRule, MemoryAuthCounters } from './auth-counters';
import { KEY_PREFIX, SharedRedis } from './shared-redis';

/** An attempt in flight whose node never settled it (crashed) stops counting after this. */
const IN_FLIGHT_TTL_MS = 60_000;
/** How long a successful login is remembered (longer than auth's knownLoginMs default). */
const LOGIN_MEMORY_MS = 31 * 24 * 3600 * 1000;
const LOGINS_PER_USER = 64;

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// The bucket's level after its leak up to now; capacity leaks away in blockMs.
const LEVEL = `
local h = redis.call('HMGET', KEYS[1], 'level', 'at', 'blocked')
local capacity = tonumber(ARGV[1])
local blockMs = tonumber(ARGV[2])
local blocked = tonumber(h[3]) or 0
local level = tonumber(h[1]) or 0
local at = tonumber(h[2]) or now
if now > at then level = math.max(0, level - (now - at) * capacity / math.max(blockMs, 1)) end
`;

// KEYS: bucket, in-flight set; ARGV: capacity, blockMs, attempt id, in-flight ttl.
const RESERVE_LUA = `${NOW}${LEVEL}
if blocked > now then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if level + redis.call('ZCARD', KEYS[2]) + 1 > capacity then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`;

// KEYS: bucket, in-flight set; ARGV: capacity, blockMs, attempt id, failed (1/0).
// Returns {level, block started (1/0), blocked until}.
const SETTLE_LUA = `${NOW}${LEVEL}
redis.call('ZREM', KEYS[2], ARGV[3])
local started = 0
if ARGV[4] == '1' then
  level = level + 1
  if capacity - level < 1 and blocked <= now then
    blocked = now + blockMs
    started = 1
  end
end
redis.call('HSET', KEYS[1], 'level', string.format('%.6f', level), 'at', now, 'blocked', blocked)
redis.call('PEXPIRE', KEYS[1], blockMs * 2 + 1000)
return {string.format('%.6f', level), started, blocked}
`;

interface Scripts {
  authReserve(bucket: string, inFlight: string, capacity: number, blockMs: number, id: string, ttl: number): Promise<number>;
  authSettle(bucket: string, inFlight: string, capacity: number, blockMs: number, id: string, failed: string): Promise<[string, number, number]>;
}

/** Where a reserved place was taken, so it is given back there. */
interface Place { id: string; shared: boolean }

export class RedisAuthCounters implements AuthCounters {
  private readonly scripts: Scripts;
  private readonly local = new MemoryAuthCounters();
  private readonly places = new Map<string, Place[]>();
  /** Blocks this node started (or saw start), by key: their end is reported once. */
  private readonly blocks = new Map<string, number>();
  private serial = 0;

  constructor(private readonly shared: SharedRedis) {
    const client: Redis = shared.client;
    client.defineCommand('authReserve', { numberOfKeys: 2, lua: RESERVE_LUA });
    client.defineCommand('authSettle', { numberOfKeys: 2, lua: SETTLE_LUA });
    this.scripts = client as unknown as Scripts;
  }

  async reserve(key: string, rule: BucketRule, now: number): Promise<boolean> {
    const id = `${this.shared.nodeName}:${process.pid}:${++this.serial}`;
    const taken = await this.shared.call('login counter', () => this.scripts.authReserve(bucketKey(key), inFlightKey(key), rule.capacity, rule.blockMs, id, IN_FLIGHT_TTL_MS));
    const ok = taken === undefined ? this.local.reserve(key, rule, now) : taken === 1;
    if (ok) {
      const list = this.places.get(key) ?? [];
      list.push({ id, shared: taken !== undefined });
      this.places.set(key, list);
    }
    return ok;
  }

  async settle(key: string, rule: BucketRule, failed: boolean, now: number): Promise<{ failures: number; blockStarted: boolean }> {
    const list = this.places.get(key);
    const place = list?.shift();
    if (list && !list.length) this.places.delete(key);
    if (place?.shared) {
      const out = await this.shared.call('login counter', () => this.scripts.authSettle(bucketKey(key), inFlightKey(key), rule.capacity, rule.blockMs, place.id, failed ? '1' : '0'));
      if (out) {
        const [level, started, blocked] = out;
        if (started === 1) this.blocks.set(key, Number(blocked));
        return { failures: Number(level), blockStarted: started === 1 };
      }
    }
    // Taken locally, or Redis went away meanwhile: counted here (a shared place expires).
    return this.local.settle(key, rule, failed, now);
  }

  async blockedUntil(key: string, now: number): Promise<number> {
    const blocked = await this.shared.call('login counter', (c) => c.hget(bucketKey(key), 'blocked'));
    if (blocked === undefined) return this.local.blockedUntil(key, now);
    const until = Number(blocked ?? 0);
    return until > now ? until : 0;
  }

  takeEndedBlocks(now: number): string[] {
    const ended = this.local.takeEndedBlocks(now);
    for (const [key, until] of this.blocks) {
      if (until <= now) {
        this.blocks.delete(key);
        if (!ended.includes(key)) ended.push(key);
      }
    }
    return ended;
  }

  async rememberLogin(user: string, address: string, now: number): Promise<void> {
    this.local.rememberLogin(user, address, now);
    const key = loginsKey(user);
    await this.shared.call('login memory', (c) => c.multi()
      .zadd(key, now, address)
      .zremrangebyrank(key, 0, -(LOGINS_PER_USER + 1))
      .pexpire(key, LOGIN_MEMORY_MS)
      .exec());
  }

  async loggedInFrom(user: string, address: string, withinMs: number, now: number): Promise<boolean> {
    const at = await this.shared.call('login memory', (c) => c.zscore(loginsKey(user), address));
    if (at === undefined) return this.local.loggedInFrom(user, address, withinMs, now);
    return at !== null && now - Number(at) <= withinMs;
  }
}

function bucketKey(key: string): string {
  return `${KEY_PREFIX}auth:${key}`;
}

function inFlightKey(key: string): string {
  return `${KEY_PREFIX}auth-in-flight:${key}`;
}

function loginsKey(user: string): string {
  return `${KEY_PREFIX}auth-logins:${user}`;
}
