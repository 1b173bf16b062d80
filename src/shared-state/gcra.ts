// Message rates per destination: the generic cell rate algorithm (GCRA), as KumoMTA's
// throttles and redis-cell do it. One number per key, the theoretical arrival time (TAT) of
// the next message: a message may go when TAT - tolerance <= now, and then moves TAT on by one
// emission interval (period / count). With the default burst of 1 the messages are spread
// evenly, so "100/h" is never more than 100 in any hour (one more at the edge of the window);
// a burst of B lets B go at once after a quiet time. Unlike fixed windows there is no edge
// where twice the rate gets through. The same arithmetic runs in memory (one node) and as
// a Lua script in Redis (all nodes share one TAT per key; time from Redis's own clock).
import { PERIODS, Rate } from '../config/schema';

export function formatRate(rate: Rate): string {
  const unit = Object.entries(PERIODS).find(([, ms]) => ms === rate.periodMs)?.[0] ?? `${rate.periodMs}ms`;
  return `${rate.count}/${unit}${rate.burst > 1 ? ` (burst ${rate.burst})` : ''}`;
}

/** Milliseconds between two messages at this rate. */
export function emissionInterval(rate: Rate): number {
  return rate.periodMs / rate.count;
}

/**
 * One GCRA step on a TAT: whether a message may go now, the new TAT, and when it is refused,
 * the epoch ms from which the next one may go.
 */
export function gcraStep(tat: number | undefined, rate: Rate, now: number): { allowed: boolean; tat: number; retryAt: number } {
  const t = emissionInterval(rate);
  const tolerance = (rate.burst - 1) * t;
  const from = Math.max(tat ?? now, now);
  if (from - tolerance > now) return { allowed: false, tat: from, retryAt: Math.ceil(from - tolerance) };
  return { allowed: true, tat: from + t, retryAt: 0 };
}

/** GCRA in memory: one node's rates. */
export class MemoryRates {
  private readonly tats = new Map<string, number>();

  /** 0 when a message may go now (and counts it), else the epoch ms when the next may go. */
  take(key: string, rate: Rate, now = Date.now()): number {
    const step = gcraStep(this.tats.get(key), rate, now);
    if (step.allowed) this.tats.set(key, step.tat);
    if (this.tats.size > 10_000) for (const [k, tat] of this.tats) if (tat < now) this.tats.delete(k);
    return step.retryAt;
  }
}

/**
 * The same step in Redis, atomic for all nodes. KEYS[1]: the TAT; ARGV: emission interval
 * and tolerance in ms. Returns 0 when allowed, else the ms to wait. Time is Redis's, so the
 * nodes' clocks do not matter; the key expires once its TAT has passed.
 */
export const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then return math.ceil(tat - tolerance - now) end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next), 'PX', math.ceil(next - now) + 1000)
return 0
`;
