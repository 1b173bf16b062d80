// GCRA (shared-state/gcra.ts): the arithmetic in memory with a clock of the test's own, the
// promise of a rate ("N/h": never more than N in any window of an hour, plus the burst) for
// arbitrary arrivals, and the Lua script against a real redis-server giving the same answers.
import fc from 'fast-check';
import Redis from 'ioredis';
import { parseDestinationLimits, parseRate } from '../../src/config/schema';
import { emissionInterval, GCRA_LUA, MemoryRates } from '../../src/shared-state/gcra';
import { startRedis, TestRedis } from '../helpers/redis-server';

test('rates are read as N per second, minute, hour or day, and bad ones are refused saying how to write them', () => {
  expect(parseRate('100/h')).toEqual({ count: 100, periodMs: 3_600_000, burst: 1 });
  expect(parseRate(' 5 / s', 3)).toEqual({ count: 5, periodMs: 1000, burst: 3 });
  expect(parseRate('1/d').periodMs).toBe(86_400_000);
  expect(() => parseRate('100 per hour')).toThrow('"100 per hour" is not a rate: write messages per period, such as 100/h (also /s, /m, /d)');
  expect(() => parseRate('0/h')).toThrow(/not a rate/);
  expect(parseDestinationLimits([{ match: '*.outlook.com', rate: '100/h', burst: 10 }])[0].rate).toEqual({ count: 100, periodMs: 3_600_000, burst: 10 });
  expect(() => parseDestinationLimits([{ match: 'x', burst: 10 }])).toThrow('rule for "x": burst needs a rate, such as "rate": "100/h", "burst": 10');
  expect(() => parseDestinationLimits([{ match: 'x', rate: '10/w' }])).toThrow('rule for "x": "10/w" is not a rate');
});

test('in memory: 100/h spreads the messages 36 s apart; a burst of 3 lets three go at once', () => {
  const rates = new MemoryRates();
  const t0 = 1_000_000;
  const even = parseRate('100/h');
  expect(rates.take('a', even, t0)).toBe(0);
  expect(rates.take('a', even, t0)).toBe(t0 + 36_000);
  expect(rates.take('a', even, t0 + 35_999)).toBe(t0 + 36_000);
  expect(rates.take('a', even, t0 + 36_000)).toBe(0);
  const burst = parseRate('100/h', 3);
  expect([0, 0, 0].map(() => rates.take('b', burst, t0))).toEqual([0, 0, 0]);
  expect(rates.take('b', burst, t0)).toBe(t0 + 36_000);
  // keys are counted apart
  expect(rates.take('c', even, t0)).toBe(0);
});

test('in memory, for any arrivals: at most N + burst - 1 messages in any window of one period, and a refusal waits at most one interval', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 5 }),
    fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 200 }),
    (count, burst, gaps) => {
      const rate = { count, periodMs: 1000, burst };
      const rates = new MemoryRates();
      const allowed: number[] = [];
      let now = 0;
      for (const gap of gaps) {
        now += gap % 300;
        const retryAt = rates.take('k', rate, now);
        if (retryAt === 0) allowed.push(now);
        else {
          // the wait named is never more than one interval
          expect(retryAt).toBeGreaterThan(now);
          expect(retryAt).toBeLessThanOrEqual(now + Math.ceil(emissionInterval(rate)));
        }
      }
      for (const start of allowed) {
        const inWindow = allowed.filter((t) => t >= start && t < start + rate.periodMs).length;
        expect(inWindow).toBeLessThanOrEqual(count + burst - 1);
      }
    }
  ));
});

describe('the Lua script in a real redis-server', () => {
  let redis: TestRedis;
  let client: Redis;
  const gcra = (key: string, rate: ReturnType<typeof parseRate>) => {
    const t = emissionInterval(rate);
    return client.eval(GCRA_LUA, 1, key, t, (rate.burst - 1) * t) as Promise<number>;
  };

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  test('10/s: one now, the next in about 100 ms, then again one', async () => {
    const rate = parseRate('10/s');
    expect(await gcra('r1', rate)).toBe(0);
    const wait = await gcra('r1', rate);
    expect(wait).toBeGreaterThan(50);
    expect(wait).toBeLessThanOrEqual(100);
    await new Promise((r) => setTimeout(r, wait + 5));
    expect(await gcra('r1', rate)).toBe(0);
    expect(await gcra('r1', rate)).toBeGreaterThan(0);
  });

  test('a burst of 5 lets five go at once, the sixth waits one interval; the key expires once idle', async () => {
    const rate = parseRate('10/s', 5);
    const answers = await Promise.all(Array.from({ length: 6 }, () => gcra('r2', rate)));
    expect(answers.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(answers[5]).toBeGreaterThan(50);
    expect(answers[5]).toBeLessThanOrEqual(100);
    const ttl = await client.pttl('r2');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1600);
  });

  test('the same decisions as in memory for a run of 40 calls at once (1/m, burst 4)', async () => {
    const rate = parseRate('1/m', 4);
    const answers = await Promise.all(Array.from({ length: 40 }, () => gcra('r3', rate)));
    expect(answers.filter((a) => a === 0)).toHaveLength(4);
    const mem = new MemoryRates();
    const now = Date.now();
    expect(Array.from({ length: 40 }, () => mem.take('r3', rate, now)).filter((a) => a === 0)).toHaveLength(4);
  });
});
