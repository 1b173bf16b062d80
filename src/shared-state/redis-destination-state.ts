// Destination limits shared by all nodes through Redis (delivery/destination-limits.ts has
// the interface and the in-memory version):
// - connections: a semaphore of expiring leases, one sorted set per limit key (member: a
//   lease id, score: its expiry). A Lua script drops expired leases, counts, and adds one when
//   below the limit, in one step. Each node renews its leases while their connections live,
//   so a crashed node's slots expire by themselves (LEASE_TTL_MS).
// - message rates: GCRA in Lua (shared-state/gcra.ts), one TAT per limit key.
// - pauses: one sorted set (member: limit key, score: paused until), read by every node each
//   heartbeat (HEARTBEAT_MS), so a throttling reply seen by one node pauses all within a
//   second, and a node started later sees the pauses still running.
// When Redis is down or slow (SharedRedis.call gives undefined) the node goes on with local
// state: its share of each connection limit and rate (1/n with n nodes last seen alive), its
// own pauses. Leases taken then are added to Redis at the next renewal once it is back, so
// the shared count is right again.
import Redis from 'ioredis';
import { Rate } from '../config/schema';
import { Lease, DestinationState, MemoryDestinationState } from '../delivery/destination-limits';
import { Logger } from '../log';
import { emissionInterval, GCRA_LUA } from './gcra';
import { KEY_PREFIX, SharedRedis } from './shared-redis';

/** A lease not renewed for this long (its node crashed or lost Redis) frees its slot. */
export const LEASE_TTL_MS = 15_000;
const RENEW_MS = 5_000;

const ACQUIRE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// ARGV[1]: ttl; ARGV[2..]: this node's lease ids under KEYS[1], given a new expiry.
const RENEW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`;

interface Scripts {
  leaseAcquire(key: string, max: number, ttl: number, id: string): Promise<number>;
  leaseRenew(key: string, ttl: number, ...ids: string[]): Promise<number>;
  gcra(key: string, interval: number, tolerance: number): Promise<number>;
}

export function defineScripts(client: Redis): Scripts {
  client.defineCommand('leaseAcquire', { numberOfKeys: 1, lua: ACQUIRE_LUA });
  client.defineCommand('leaseRenew', { numberOfKeys: 1, lua: RENEW_LUA });
  client.defineCommand('gcra', { numberOfKeys: 1, lua: GCRA_LUA });
  return client as unknown as Scripts;
}

export interface RedisDestinationOptions {
  leaseTtlMs?: number;
  renewMs?: number;
}

export class RedisDestinationState implements DestinationState {
  private readonly scripts: Scripts;
  /** Local state: this node's connections (always), its rates while Redis is away, and the pauses as last read from Redis or set here. */
  private readonly local = new MemoryDestinationState();
  /** This node's leases by limit key. */
  private readonly leases = new Map<string, Set<string>>();
  /** Pauses set here, written again each heartbeat while they last (Redis may have lost them). */
  private readonly ownPauses = new Map<string, number>();
  private readonly ttl: number;
  private readonly renewMs: number;
  private renewedAt = 0;
  private serial = 0;

  constructor(private readonly shared: SharedRedis, private readonly log: Logger, options: RedisDestinationOptions = {}) {
    this.scripts = defineScripts(shared.client);
    this.ttl = options.leaseTtlMs ?? LEASE_TTL_MS;
    this.renewMs = options.renewMs ?? RENEW_MS;
    shared.onTick(() => this.tick());
  }

  async acquire(key: string, max: number): Promise<Lease | null> {
    const id = `${this.shared.nodeName}:${process.pid}:${++this.serial}`;
    const taken = await this.shared.call('connection lease', () => this.scripts.leaseAcquire(leaseKey(key), max, this.ttl, id));
    let lease: Lease | null;
    // A call that timed out may still have added its lease in Redis: never renewed (its id
    // is not kept), it frees its slot after the TTL, as a crashed node's would.
    if (taken === undefined) {
      // Redis away: this node's share of the limit, counted by the connections it holds.
      lease = this.local.acquireNow(key, Math.max(1, Math.floor(max / this.shared.nodes)));
    } else {
      lease = taken === 1 ? this.local.acquireNow(key, Infinity) : null;
    }
    if (!lease) return null;
    const ids = this.leases.get(key) ?? new Set<string>();
    this.leases.set(key, ids.add(id));
    const local = lease;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        local.release();
        ids.delete(id);
        if (!ids.size) this.leases.delete(key);
        void this.shared.call('lease release', (c) => c.zrem(leaseKey(key), id));
      },
    };
  }

  async takeRate(key: string, rate: Rate): Promise<number> {
    const interval = emissionInterval(rate);
    const wait = await this.shared.call('message rate', () => this.scripts.gcra(rateKey(key), interval, (rate.burst - 1) * interval));
    if (wait === undefined) {
      // Redis away: this node's share of the rate.
      const n = this.shared.nodes;
      return this.local.takeRate(key, { count: rate.count / n, periodMs: rate.periodMs, burst: Math.max(1, Math.floor(rate.burst / n)) });
    }
    return wait > 0 ? Date.now() + wait : 0;
  }

  pause(key: string, untilMs: number): boolean {
    const first = this.local.pause(key, untilMs);
    this.ownPauses.set(key, Math.max(untilMs, this.ownPauses.get(key) ?? 0));
    // No expiry on the set: each node's heartbeat drops the pauses that are over.
    void this.shared.call('pause', (c) => c.zadd(PAUSES, 'GT', untilMs, key));
    return first;
  }

  pausedUntil(key: string): number {
    return this.local.pausedUntil(key);
  }

  /** Each heartbeat: the pauses of all nodes; every RENEW_MS: this node's leases renewed. */
  private async tick(): Promise<void> {
    const now = Date.now();
    // This node's pauses again (ZADD GT keeps a longer one): after Redis restarted empty,
    // the other nodes learn of them all the same.
    for (const [key, until] of this.ownPauses) if (until <= now) this.ownPauses.delete(key);
    if (this.ownPauses.size && this.shared.up) {
      await this.shared.call('pause', (c) => {
        const m = c.multi();
        for (const [key, until] of this.ownPauses) m.zadd(PAUSES, 'GT', until, key);
        return m.exec();
      });
    }
    const read = await this.shared.call('pauses', (c) => c.multi().zremrangebyscore(PAUSES, '-inf', now).zrangebyscore(PAUSES, now, '+inf', 'WITHSCORES').exec());
    const pairs = read?.[1]?.[1] as string[] | undefined;
    for (let i = 0; pairs && i + 1 < pairs.length; i += 2) {
      const key = pairs[i];
      const until = Number(pairs[i + 1]);
      if (until > this.pausedUntil(key)) {
        if (!this.pausedUntil(key)) this.log.warn({ destination: key, pausedUntil: new Date(until).toISOString() }, `destination ${key.replace(/^(rule|host):/, '')} paused by another node (it was throttled there)`);
        this.local.pause(key, until);
      }
    }
    if (now - this.renewedAt < this.renewMs || !this.shared.up) return;
    this.renewedAt = now;
    for (const [key, ids] of this.leases) {
      if (ids.size) await this.shared.call('lease renewal', () => this.scripts.leaseRenew(leaseKey(key), this.ttl, ...ids));
    }
  }
}

const PAUSES = `${KEY_PREFIX}pauses`;

function leaseKey(key: string): string {
  return `${KEY_PREFIX}leases:${key}`;
}

function rateKey(key: string): string {
  return `${KEY_PREFIX}rate:${key}`;
}
