// The login limiter's arithmetic with a clock of its own: reservations, leaking, blocks
// logged once, the user block that spares known addresses, IPv6 /64 keys.
import pino from 'pino';
import { Writable } from 'node:stream';
import { MemoryAuthCounters } from '../../src/shared-state/auth-counters';
import { clientKey } from '../../src/policy/client-access';
import { addressKey, AuthFailures, LoginAttempt } from '../../src/submission/auth-failures';
import { Rejection } from '../../src/policy/rejection';

function setup(over: Partial<ConstructorParameters<typeof AuthFailures>[0]> = {}) {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } }));
  const limiter = new AuthFailures({ maxFailures: 10, maxUserFailures: 20, blockMs: 900_000, delayMs: 1000, log, now: () => now, ...over });
  return { limiter, lines, tick: (ms: number) => { now += ms; } };
}

const attempt = async (p: Promise<LoginAttempt | Rejection>): Promise<LoginAttempt> => {
  const x = await p;
  if (x instanceof Rejection) throw new Error(`refused: ${x.message}`);
  return x;
};

afterEach(() => jest.useRealTimers());

test('attempts in flight take places: the 11th parallel attempt is refused before any result', async () => {
  const { limiter } = setup();
  const inFlight = await Promise.all(Array.from({ length: 10 }, (_, i) => attempt(limiter.begin('192.0.2.1', `u${i}`))));
  const refused = await limiter.begin('192.0.2.1', 'u10');
  expect(refused).toBeInstanceOf(Rejection);
  expect((refused as Rejection).message).toMatch(/^4\.7\.0 too many logins from 192\.0\.2\.1 in progress at once/);
  await inFlight[0].succeeded(); // a success gives its place back, counting nothing
  expect(await limiter.begin('192.0.2.1', 'u11')).not.toBeInstanceOf(Rejection);
});

test('a success clears nothing; the 10th failure blocks and is logged once; the block ends logged once', async () => {
  jest.useFakeTimers();
  const { limiter, lines, tick } = setup({ maxUserFailures: 1000 });
  for (let i = 0; i < 9; i++) {
    expect((await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed()).reply.responseCode).toBe(535);
    await (await attempt(limiter.begin('192.0.2.1', 'alice'))).succeeded();
  }
  const tenth = (await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed());
  expect(tenth.reply.message).toMatch(/^4\.7\.0 too many failed logins from 192\.0\.2\.1; try again in 15 minute/);
  expect(tenth.delayMs).toBe(5000); // capped at five steps
  expect(await limiter.begin('192.0.2.1', 'alice')).toBeInstanceOf(Rejection);
  expect(await limiter.connectionRefusal('192.0.2.1')).toBeInstanceOf(Rejection);
  expect(await limiter.connectionRefusal('192.0.2.2')).toBeNull();
  expect(lines.filter((l) => /too many failed logins from this address/.test(String(l.msg)))).toEqual([
    expect.objectContaining({ client: '192.0.2.1', seconds: 900, level: 40 }),
  ]);

  tick(900_001);
  jest.advanceTimersByTime(2000);
  expect(lines.filter((l) => /login block ended/.test(String(l.msg)))).toEqual([expect.objectContaining({ client: '192.0.2.1', level: 30 })]);
  expect(await limiter.begin('192.0.2.1', 'alice')).not.toBeInstanceOf(Rejection);
  jest.advanceTimersByTime(5000);
  expect(lines.filter((l) => /login block ended/.test(String(l.msg)))).toHaveLength(1);
  limiter.close();
});

test('failures leak away: one per blockTime / maxFailures', async () => {
  const { limiter, tick } = setup({ maxUserFailures: 1000 });
  for (let i = 0; i < 9; i++) (await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed());
  tick(90_000); // one failure's worth
  expect((await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed()).reply.responseCode).toBe(535);
  expect((await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed()).reply.responseCode).toBe(421);
  limiter.close();
});

test('answers to failures slow down after the third', async () => {
  const { limiter } = setup();
  const delays = [] as number[];
  for (let i = 0; i < 9; i++) delays.push((await (await attempt(limiter.begin('192.0.2.1', 'bob'))).failed()).delayMs);
  expect(delays).toEqual([0, 0, 0, 1000, 2000, 3000, 4000, 5000, 5000]);
});

test('a user name under attack is refused from new addresses only', async () => {
  const { limiter, lines } = setup({ delayMs: 0 });
  await (await attempt(limiter.begin('198.51.100.7', 'dave'))).succeeded();
  for (let i = 0; i < 20; i++) (await (await attempt(limiter.begin(`203.0.113.${i}`, 'Dave'))).failed());
  const fromNew = await limiter.begin('203.0.113.200', 'dave');
  expect((fromNew as Rejection).message).toMatch(/^4\.7\.0 too many failed logins for dave; try again in 15 minute\(s\), or from an address that logged in as dave before/);
  expect(await limiter.begin('198.51.100.7', 'dave')).not.toBeInstanceOf(Rejection);
  expect(await limiter.begin('203.0.113.200', 'carol')).not.toBeInstanceOf(Rejection);
  expect(lines.filter((l) => /too many failed logins for this user/.test(String(l.msg)))).toEqual([expect.objectContaining({ user: 'dave' })]);
  limiter.close();
});

test('an invalid user name gets no bucket of its own; the address still counts', async () => {
  const counters = new MemoryAuthCounters();
  const { limiter } = setup({ counters });
  (await (await attempt(limiter.begin('192.0.2.1', 'bad name\r\n'))).failed());
  expect(counters.blockedUntil('user:bad name\r\n', Date.now())).toBe(0);
  expect(counters.settle('address:192.0.2.1', { capacity: 10, blockMs: 900_000 }, false, 1_000_000).failures).toBe(1);
});

test('IPv6 clients are counted by their /64; IPv4-mapped ones by the IPv4 address', async () => {
  expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
  expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
  expect(clientKey('::1')).toBe('0:0:0:0::/64');
  expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  expect(clientKey('2001:DB8:0001:0002::')).toBe('2001:db8:1:2::/64');
  expect(clientKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  expect(addressKey('::ffff:192.0.2.1')).toBe('address:192.0.2.1');
  expect(addressKey('2001:db8:1:2::99')).toBe(addressKey('2001:db8:1:2:ffff::1'));

  const { limiter } = setup({ delayMs: 0 });
  for (let i = 0; i < 10; i++) (await (await attempt(limiter.begin(`2001:db8:1:2::${i + 1}`, 'bob'))).failed());
  expect(await limiter.connectionRefusal('2001:db8:1:2:abcd::1')).toBeInstanceOf(Rejection);
  expect(await limiter.connectionRefusal('2001:db8:1:3::1')).toBeNull();
  limiter.close();
});
