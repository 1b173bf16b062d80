// The counters behind login limiting (submission/auth-failures.ts): per key (a client address
// or a user name) a leaky bucket of failed logins plus the attempts still in flight, a block
// time, and which addresses logged in as which user lately. Kept in memory here; relay nodes
// share them through Redis (redis-auth-counters.ts), each method one atomic step. A method
// may answer at once (in memory) or later (a Redis round trip): callers await it.

/** A value now, or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

export interface BucketRule {
  /** Failures (counted with the attempts in flight) the bucket holds; a bucket left without room for one more blocks its key. */
  capacity: number;
  /** How long a block lasts; a full bucket also takes this long to drain. */
  blockMs: number;
}

export interface AuthCounters {
  /**
   * Takes a place for an attempt whose result is not known yet. False, taking nothing, when
   * the key is blocked or its failures plus the attempts in flight leave no room for one more.
   */
  reserve(key: string, rule: BucketRule, now: number): Awaitable<boolean>;
  /**
   * Gives back the place `reserve` took. A failure stays in the bucket; a bucket then left
   * without room for another attempt blocks the key for `rule.blockMs`. Returns the failures
   * now counted (decayed) and whether this call started a block.
   */
  settle(key: string, rule: BucketRule, failed: boolean, now: number): Awaitable<{ failures: number; blockStarted: boolean }>;
  /** Epoch ms until which the key is blocked, 0 when it is not. */
  blockedUntil(key: string, now: number): Awaitable<number>;
  /** Keys whose block has ended since the last call, each reported once. */
  takeEndedBlocks(now: number): string[];
  /** Notes a successful login of `user` from `address`. */
  rememberLogin(user: string, address: string, now: number): Awaitable<void>;
  /** Whether `user` logged in from `address` within the last `withinMs`. */
  loggedInFrom(user: string, address: string, withinMs: number, now: number): Awaitable<boolean>;
}

interface Bucket {
  /** Failures at `at`; they leak at `leakPerMs` (`capacity` per `blockMs`). */
  level: number;
  at: number;
  leakPerMs: number;
  inFlight: number;
  blockedUntil: number;
}

/** Most addresses remembered per user; the least recent goes first. */
const LOGINS_PER_USER = 64;

export class MemoryAuthCounters implements AuthCounters {
  private readonly buckets = new Map<string, Bucket>();
  private readonly blocked = new Set<string>();
  private readonly logins = new Map<string, Map<string, number>>();
  private prunedAt = 0;

  reserve(key: string, rule: BucketRule, now: number): boolean {
    const bucket = this.bucket(key, rule, now);
    if (bucket.blockedUntil > now) return false;
    if (bucket.level + bucket.inFlight + 1 > rule.capacity) return false;
    bucket.inFlight += 1;
    return true;
  }

  settle(key: string, rule: BucketRule, failed: boolean, now: number): { failures: number; blockStarted: boolean } {
    const bucket = this.bucket(key, rule, now);
    bucket.inFlight = Math.max(0, bucket.inFlight - 1);
    let blockStarted = false;
    if (failed) {
      bucket.level += 1;
      if (rule.capacity - bucket.level < 1 && bucket.blockedUntil <= now) {
        bucket.blockedUntil = now + rule.blockMs;
        this.blocked.add(key);
        blockStarted = true;
      }
    }
    this.prune(now);
    return { failures: bucket.level, blockStarted };
  }

  blockedUntil(key: string, now: number): number {
    const until = this.buckets.get(key)?.blockedUntil ?? 0;
    return until > now ? until : 0;
  }

  takeEndedBlocks(now: number): string[] {
    const ended: string[] = [];
    for (const key of this.blocked) {
      if ((this.buckets.get(key)?.blockedUntil ?? 0) <= now) {
        this.blocked.delete(key);
        ended.push(key);
      }
    }
    return ended;
  }

  rememberLogin(user: string, address: string, now: number): void {
    let seen = this.logins.get(user);
    if (!seen) this.logins.set(user, (seen = new Map()));
    seen.delete(address); // re-inserted last: the Map's order is least recent first
    seen.set(address, now);
    if (seen.size > LOGINS_PER_USER) seen.delete(seen.keys().next().value!);
  }

  loggedInFrom(user: string, address: string, withinMs: number, now: number): boolean {
    const at = this.logins.get(user)?.get(address);
    return at !== undefined && now - at <= withinMs;
  }

  /** The bucket with its leak applied up to `now`. */
  private bucket(key: string, rule: BucketRule, now: number): Bucket {
    const leakPerMs = rule.capacity / Math.max(rule.blockMs, 1);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { level: 0, at: now, leakPerMs, inFlight: 0, blockedUntil: 0 };
      this.buckets.set(key, bucket);
      return bucket;
    }
    bucket.leakPerMs = leakPerMs;
    if (now > bucket.at) {
      bucket.level = Math.max(0, bucket.level - (now - bucket.at) * leakPerMs);
      bucket.at = now;
    }
    return bucket;
  }

  // Forget empty buckets now and then, so the maps cannot grow without bound (at most once
  // a second: with many keys in use a sweep on every failure would cost more than the check).
  private prune(now: number): void {
    if (this.buckets.size < 10_000 || now - this.prunedAt < 1000) return;
    this.prunedAt = now;
    for (const [key, b] of this.buckets) {
      const drained = b.level - (now - b.at) * b.leakPerMs <= 0;
      if (drained && b.inFlight === 0 && b.blockedUntil <= now && !this.blocked.has(key)) this.buckets.delete(key);
    }
  }
}
